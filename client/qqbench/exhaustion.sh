#!/usr/bin/env bash
# exhaustion.sh measures what qqd does under resource-exhaustion attacks
# and when its disk fills: `make exhaustion` (docs/operations.md,
# "Exhaustion: what qqd does under attack and when the disk fills").
#
# Cases (EXH_CASES, default all, in this order):
#   baseline   the probe alone (qqbench conns --conns 1): the memory and
#              latencies the others are compared with
#   conns      20,000 connections that never log in, 16 per source address
#              (limits.max_connections_per_ip) from 1,250 addresses of
#              127.1.0.0/16, in two qqbench processes of 10,000 (the
#              open-file limit is per process), held 40 s (login_timeout
#              is 30 s)
#   slowloris  1,000 connections (16 per address) each sending a login
#              frame one byte a second, held 40 s
#   regflood   2,000 registrations, 10 from each of 200 addresses, 64 at a
#              time, with limits.exempt_networks: [] so that
#              register_per_ip_per_minute (5) applies to loopback
#   regflood1  the same with accounts.hash_concurrency: 1 (the default is
#              the number of CPUs)
#   diskfull   TestDiskFull (daemon/qqd): a 64 MiB tmpfs filled under
#              load (needs root to mount)
#   size       bytes per message: qqbench fill of 100,000 messages of
#              100 bytes into a fresh database
# Each attack runs against a fresh qqd (default configuration, metrics on
# a free port, antispam's flood rule lifted so that the probe's 10 sends a
# second pass) while the probe (u0 and u1 from 127.0.0.1) pings and sends
# every 100 ms and logs in anew every second. Results: EXH_OUT (default
# exhaustion-results/<date-time>): per case a .txt (qqbench's summary and
# JSON line), the qqd configuration and its log.
set -euo pipefail

log() { printf 'exhaustion: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=${EXH_OUT:-exhaustion-results/$(date +%Y-%m-%d-%H%M%S)}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/../.."
GO=${GO:-go}
cases=${EXH_CASES:-baseline conns slowloris regflood regflood1 diskfull size}
mkdir -p "$out"
work=$(mktemp -d /tmp/qqexh.XXXXXX)
qqd_pid=
stop_qqd() {
	[ -n "$qqd_pid" ] || return 0
	kill -TERM "$qqd_pid" 2>/dev/null || true
	wait "$qqd_pid" 2>/dev/null || true
	qqd_pid=
}
cleanup() {
	stop_qqd
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# qqd and qqbench each hold up to 20,000 sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "output in $out; open-file limit $(ulimit -n)"
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
	echo "kernel: $(uname -srm); cpus: $(nproc); open files: $(ulimit -n)"
	echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/env.txt"

$GO build -o "$work/qqd" ./daemon/qqd
$GO build -o "$work/qqbench" ./client/qqbench

base_yaml='metrics: {listen: "127.0.0.1:0"}
filters:
  - plugin: antispam
    config: {flood: {max_messages: 10000, window: 1s}, repeat: {enabled: false}}
  - plugin: wordfilter
    config: {lists: [{name: spam-phrases, action: reject, words: [buy followers]}]}
'

# start_qqd NAME [EXTRA_YAML] starts a fresh qqd and sets qqd_pid and addr.
start_qqd() {
	local name=$1 extra=${2:-}
	printf '%s%s\n' "$base_yaml" "$extra" >"$out/$name.yaml"
	mkdir -p "$work/$name"
	: >"$out/$name.qqd.log"
	"$work/qqd" -config "$out/$name.yaml" -data-dir "$work/$name" -listen 127.0.0.1:0 >"$out/$name.qqd.log" 2>&1 &
	qqd_pid=$!
	addr=
	for _ in $(seq 100); do
		addr=$(sed -n 's/.* msg=listening addr=\([0-9.]*:[0-9]*\).*/\1/p' "$out/$name.qqd.log" || true)
		[ -z "$addr" ] || break
		sleep 0.1
	done
	[ -n "$addr" ] || die "qqd did not start (see $out/$name.qqd.log)"
}

for c in $cases; do
	log "case $c"
	case $c in
	baseline)
		start_qqd baseline
		"$work/qqbench" --addr "$addr" --register --qqd-pid "$qqd_pid" conns --conns 1 --duration 20s --warmup 2s | tee "$out/baseline.txt"
		stop_qqd
		;;
	conns)
		start_qqd conns
		# Two attackers of 10,000 from disjoint address ranges; only the
		# first one's probe is reported (both probe).
		"$work/qqbench" --addr "$addr" --qqd-pid "$qqd_pid" conns --conns 10000 --first-addr 625 \
			--duration 40s --warmup 0s >"$out/conns-b.txt" 2>&1 &
		other=$!
		"$work/qqbench" --addr "$addr" --register --qqd-pid "$qqd_pid" conns --conns 10000 \
			--duration 40s --warmup 2s | tee "$out/conns.txt"
		wait "$other" || log "second attacker failed (see $out/conns-b.txt)"
		grep -E 'connections from|closed by qqd' "$out/conns-b.txt" | sed 's/^/  second attacker:/' | tee -a "$out/conns.txt"
		grep -cE 'refused by a limit|too many' "$out/conns.qqd.log" | sed 's/^/  qqd log lines about refused connections: /' | tee -a "$out/conns.txt"
		grep -m3 'accept failed' "$out/conns.qqd.log" | tee -a "$out/conns.txt" || true
		stop_qqd
		;;
	slowloris)
		start_qqd slowloris
		"$work/qqbench" --addr "$addr" --register --qqd-pid "$qqd_pid" slowloris --conns 1000 \
			--duration 40s --warmup 2s | tee "$out/slowloris.txt"
		stop_qqd
		;;
	regflood | regflood1)
		extra='limits: {exempt_networks: []}'
		[ "$c" = regflood ] || extra="$extra
accounts: {hash_concurrency: 1}"
		start_qqd "$c" "$extra"
		"$work/qqbench" --addr "$addr" --register --qqd-pid "$qqd_pid" regflood --conns 2000 --per-addr 10 \
			--window 64 --duration 5m --warmup 2s | tee "$out/$c.txt"
		stop_qqd
		;;
	diskfull)
		$GO test -count=1 -run 'TestDiskFull$' -v ./daemon/qqd/ 2>&1 | grep -v 'qqd: time=' | tee "$out/diskfull.txt"
		;;
	size)
		mkdir -p "$work/size"
		"$work/qqbench" fill --db "$work/size/qq.db" --users 1000 --messages 100000 --body-bytes 100 \
			--pending-fraction 0.01 | tee "$out/size.txt"
		ls -l "$work/size" | tee -a "$out/size.txt"
		;;
	*) die "unknown case $c" ;;
	esac
done
log "results in $out"
