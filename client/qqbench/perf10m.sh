#!/usr/bin/env bash
# perf10m.sh measures qqd with a large history: `make perf10m`
# (docs/performance.md, "10 million messages stored").
#
# It builds qqd and qqbench, fills a database with PERF_10M_MESSAGES
# (10,000,000) messages between random pairs of 1,000 users once (kept in
# PERF_10M_DB, default perf-results/10m.db: about 6 minutes and 2.4 GB),
# then for each of PERF_RUNS (3) runs starts a fresh qqd pinned to CPU 1
# on a fresh copy of it and runs, with qqbench pinned to CPU 0, a closed
# loop dm (W=8, C=1,000, 20 s) and history+offline reads at 500 calls/s.
# Results: OUT/results.jsonl and OUT/report.md (OUT: PERF_OUT, default
# perf-results/10m-<date-time>). It needs about three times the database's
# size in free disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
runs=${PERF_RUNS:-3}
msgs=${PERF_10M_MESSAGES:-10000000}
db=${PERF_10M_DB:-$PWD/perf-results/10m.db}
out=${PERF_OUT:-perf-results/10m-$(date +%Y-%m-%d-%H%M%S)}
case $out in /*) ;; *) out=$PWD/$out ;; esac
work=$(mktemp -d /tmp/qqperf10m.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$out/logs" "$work/bin" "$(dirname "$db")"
if [ -n "${PERF_QQD_BIN:-}" ]; then cp "$PERF_QQD_BIN" "$work/bin/qqd"; else $GO build -o "$work/bin/qqd" ./daemon/qqd; fi
$GO build -o "$work/bin/qqbench" ./client/qqbench
qqd=$work/bin/qqd qqbench=$work/bin/qqbench
if [ ! -s "$db" ]; then
	echo "perf10m: filling $db with $msgs messages (once)" >&2
	"$qqbench" fill --db "$db" --messages "$msgs" --users 1000 --json >"$out/fill.json"
fi
cat >"$out/bench.yaml" <<'YAML'
limits:
  send_rate: 100000
  send_burst: 100000
  auth_per_ip_per_minute: 100000
  auth_per_account_per_minute: 100000
  max_pending_per_user: 10000000
  max_connections: 100000
  max_connections_per_ip: 100000
metrics:
  listen: "127.0.0.1:0"
filters:
  - plugin: antispam
    config:
      flood: {max_messages: 10000, window: 1s}
      repeat: {max_same_body: 10000, max_recipients: 10000, window: 1s}
  - plugin: wordfilter
    config:
      lists:
        - name: spam-phrases
          action: reject
          reason: message looks like spam
          words: [buy followers, free bitcoin, crypto giveaway]
YAML
run() { # label qqbench-args...
	local label=$1 addr= i
	shift
	rm -rf "$work/data"
	mkdir -p "$work/data"
	cp "$db" "$work/data/qq.db"
	taskset -c 1 "$qqd" -config "$out/bench.yaml" -data-dir "$work/data" -listen 127.0.0.1:0 >"$out/logs/$label.qqd.log" 2>&1 &
	pid=$!
	for i in $(seq 1 150); do
		addr=$(grep -o 'msg="qqd starting".* listen=[0-9.:]*' "$out/logs/$label.qqd.log" | sed 's/.*listen=//') || true
		[ -n "$addr" ] && break
		sleep 0.2
	done
	[ -n "$addr" ] || { echo "perf10m: qqd did not start (see $out/logs/$label.qqd.log)" >&2; exit 1; }
	echo "perf10m: $label" >&2
	taskset -c 0 "$qqbench" --addr "$addr" --qqd-pid "$pid" --label "$label" --json "$@" >>"$out/results.jsonl" 2>"$out/logs/$label.qqbench.log"
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
}
for r in $(seq 1 "$runs"); do
	run dm-closed-w8-c1000-10m --users 1000 --warmup 2s dm --window 8 --duration 20s
	run history-r500-c1000-10m --users 1000 --warmup 2s history --rate 500 --duration 20s
done
"$qqbench" report "$out/results.jsonl" | tee "$out/report.md"
