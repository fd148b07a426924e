#!/usr/bin/env bash
# cluster-bench.sh measures cluster mode (issue 15) side by side, in one
# run: `make perf-cluster` (docs/performance.md, "Cluster").
#
# Each run of each configuration starts a fresh cluster with qqcluster up
# (fresh directory, own PostgreSQL when it uses one, NATS servers inside
# the qqcluster process), pinned as a whole to PERF_QQD_CPUS (qqd nodes,
# their plugins, PostgreSQL and NATS share those CPUs), registers the
# users through the first node in an unmeasured warm-up, runs qqbench
# pinned to PERF_BENCH_CPUS, and stops the cluster. The configurations
# are interleaved: run 1 of each, then run 2 of each (in rotated order),
# and so on.
#
#   sqlite-1node      one qqd on the sqlite storage (standalone)
#   pg-1node          the same qqd on the postgres storage (standalone:
#                     cluster mode off)
#   pg-1node-cluster  one qqd on postgres in cluster mode (NATS bus on)
#   pg-3nodes         three qqd nodes on postgres in cluster mode, the
#                     users spread over them (u<i> on node i mod 3)
# dm closed loop, the same qqbench flags for all. After pg-3nodes'
# closed loop, on the same cluster: the push latency of a split dm open
# loop (half the users send, to the other half) with the recipients on
# the senders' node (push-same-node) and on another node
# (push-cross-node), in ABBA order.
#
# qqd's CPU (nodes and their plugins) is summed over the nodes;
# PostgreSQL's (postmaster and backends) and NATS's (the qqcluster
# process: its NATS servers and the idle load balancer) are reported
# apart. Every JSON result goes to OUT/results.jsonl; `qqbench report`
# prints the tables (OUT/report.md, OUT/report.csv).
#
# Knobs (environment):
#   PERF_RUNS        runs per configuration (default 3)
#   PERF_CONFIGS     configurations (default: sqlite-1node pg-1node
#                    pg-1node-cluster pg-3nodes; pg-3nodes includes the
#                    push latency runs)
#   PERF_USERS       users (default 500)
#   PERF_WINDOW      closed loop sends in flight per user (default 8)
#   PERF_DURATION    measured duration (default 15s)
#   PERF_LAT_RATE    open-loop rate of the push latency runs (default 500
#                    msg/s in all)
#   PERF_QUICK=1     smoke test: 60 users, 3 s runs, 1 run
#   PERF_OUT         output directory (default perf-results/cluster-<date-time>)
#   PERF_QQD_CPUS, PERF_BENCH_CPUS  taskset CPU lists (default 1 and 0)
#   GO               the go command (default go)
set -euo pipefail

log() { printf 'perf-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=${PERF_OUT:-perf-results/cluster-$(date +%Y-%m-%d-%H%M%S)}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/../.."

GO=${GO:-go}
quick=${PERF_QUICK:-0}
if [ "$quick" = 1 ]; then
	runs=${PERF_RUNS:-1} users=${PERF_USERS:-60} duration=${PERF_DURATION:-3s} warmup=1s
else
	runs=${PERF_RUNS:-3} users=${PERF_USERS:-500} duration=${PERF_DURATION:-15s} warmup=2s
fi
configs=${PERF_CONFIGS:-sqlite-1node pg-1node pg-1node-cluster pg-3nodes}
window=${PERF_WINDOW:-8}
lat_rate=${PERF_LAT_RATE:-500}
qqd_cpus=${PERF_QQD_CPUS:-1}
bench_cpus=${PERF_BENCH_CPUS:-0}
password=bench-password
for c in $configs; do
	case $c in sqlite-1node | pg-1node | pg-1node-cluster | pg-3nodes) ;;
	*) die "unknown configuration $c in PERF_CONFIGS" ;;
	esac
done
command -v taskset >/dev/null || die "taskset not found (util-linux)"
taskset -c "$qqd_cpus" true 2>/dev/null && taskset -c "$bench_cpus" true 2>/dev/null ||
	die "cannot pin to CPUs $qqd_cpus and $bench_cpus; set PERF_QQD_CPUS and PERF_BENCH_CPUS"

# Everything temporary lives in work; the trap stops the cluster this
# script started (qqcluster stops its nodes, NATS and PostgreSQL).
work=$(mktemp -d /tmp/qqclb.XXXXXX)
chmod 755 "$work" # PostgreSQL runs as the postgres user under root
cl_pid= cl_dir= pg_pid= cl_name=
stop_cluster() {
	[ -n "$cl_pid" ] || return 0
	if kill -0 "$cl_pid" 2>/dev/null; then
		kill -TERM "$cl_pid" 2>/dev/null || true
		for _ in $(seq 900); do
			kill -0 "$cl_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$cl_pid" 2>/dev/null; then
			log "qqcluster $cl_pid did not stop in 90 s; killing it and its nodes"
			# shellcheck disable=SC2046 # one pid per word
			kill -KILL $(pgrep -P "$cl_pid") "$cl_pid" 2>/dev/null || true
		fi
	fi
	wait "$cl_pid" 2>/dev/null || true
	# PostgreSQL is not qqcluster's child (pg_ctl detaches it); qqcluster
	# stops it, but its postmaster may take a moment to exit.
	for _ in $(seq 50); do
		[ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then
		log "PostgreSQL $pg_pid still running; stopping it"
		kill -TERM "$pg_pid" 2>/dev/null || true
		for _ in $(seq 300); do
			kill -0 "$pg_pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	if [ -n "$cl_dir" ]; then
		for l in "$cl_dir"/d/*/qqd.log; do
			[ -f "$l" ] && cp "$l" "$out/logs/$cl_name.$(basename "$(dirname "$l")").qqd.log"
		done
		rm -rf "$cl_dir"
	fi
	cl_pid= cl_dir= pg_pid=
}
child_pid=
child() {
	"$@" &
	child_pid=$!
	local rc=0
	wait "$child_pid" || rc=$?
	child_pid=
	return "$rc"
}
cleanup() {
	if [ -n "$child_pid" ]; then
		kill -TERM "$child_pid" 2>/dev/null || true
		wait "$child_pid" 2>/dev/null || true
	fi
	stop_cluster
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out/logs"
results=$out/results.jsonl
: >"$results"
log "output in $out"

log "building qqd, qqcluster and qqbench"
mkdir -p "$work/bin"
$GO build -o "$work/bin/qqd" ./daemon/qqd
$GO build -o "$work/bin/qqcluster" ./daemon/cluster/qqcluster
$GO build -o "$work/bin/qqbench" ./client/qqbench
qqbench=$work/bin/qqbench

# The bench settings of docs/performance.md (limits raised, antispam at its
# maxima) for every node; qqcluster writes the rest of each qq.yaml. The
# storage and filter deadlines are raised from 5 s and 2 s: with every
# process of the cluster on one core (and Argon2id logins in the warm-up)
# a call can wait longer than that for the CPU on a busy machine, and
# would fail as unavailable.
cat >"$out/extra.yaml" <<'EOF'
storage.timeout: 30s
limits:
  send_rate: 100000
  send_burst: 100000
  auth_per_ip_per_minute: 100000
  auth_per_account_per_minute: 100000
  max_pending_per_user: 10000000
  max_connections: 100000
  max_connections_per_ip: 100000
filters:
  - plugin: antispam
    timeout: 10s
    config:
      flood: {max_messages: 10000, window: 1s}
      repeat: {max_same_body: 10000, max_recipients: 10000, window: 1s}
  - plugin: wordfilter
    timeout: 10s
    config:
      lists:
        - name: spam-phrases
          action: reject
          reason: message looks like spam
          words: [buy followers, free bitcoin, crypto giveaway]
EOF
# The postgres nodes also wait longer for a new PostgreSQL connection
# (10 s by default), for the same reason.
{
	cat "$out/extra.yaml"
	echo "storage.config.connect_timeout: 30s"
} >"$out/extra-pg.yaml"

load1=$(cut -d' ' -f1 /proc/loadavg)
if [ "${load1%%.*}" -ge 1 ]; then
	log "NOTE: load average $load1 before the start: other processes are running, expect noisy figures"
	echo "load average $load1 at the start: other processes were running; figures are noisy" >>"$out/notes.txt"
fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
	echo "go: $($GO version)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')); cluster cpus: $qqd_cpus, qqbench cpus: $bench_cpus"
	echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "configs: $configs; runs: $runs; users: $users; window: $window; duration: $duration; warmup: $warmup; latency rate: $lat_rate"
} >"$out/env.txt"

# start_cluster NAME QQCLUSTER-FLAGS... starts a fresh cluster and sets
# cl_pid, node_addrs and node_pids (comma-separated, in node order) and
# pg_pid (empty without PostgreSQL); then registers the users.
start_cluster() {
	local name=$1
	shift
	cl_name=$name
	cl_dir=$(mktemp -d "$work/c.XXXXXX")
	chmod 755 "$cl_dir"
	taskset -c "$qqd_cpus" "$work/bin/qqcluster" up -dir "$cl_dir/d" -lb 127.0.0.1:0 -qqd "$work/bin/qqd" \
		-config "$out/extra.yaml" "$@" >"$out/logs/$name.up.out" 2>"$out/logs/$name.up.log" &
	cl_pid=$!
	for _ in $(seq 1200); do
		grep -q '^running;' "$out/logs/$name.up.out" 2>/dev/null && break
		kill -0 "$cl_pid" 2>/dev/null || die "qqcluster exited: $(tail -n 5 "$out/logs/$name.up.log")"
		sleep 0.1
	done
	grep -q '^running;' "$out/logs/$name.up.out" || die "qqcluster not up within 120 s (see $out/logs/$name.up.log)"
	# "  node a         client 127.0.0.1:P  metrics ..." then a line
	# ending "(pid N)".
	node_addrs=$(awk '$1 == "node" && $3 == "client" { print $4 }' "$out/logs/$name.up.out" | paste -sd,)
	node_pids=$(sed -n 's/.*(pid \([0-9]*\))$/\1/p' "$out/logs/$name.up.out" | paste -sd,)
	[ -n "$node_addrs" ] && [ -n "$node_pids" ] || die "no node addresses in $out/logs/$name.up.out"
	pg_pid=
	if [ -f "$cl_dir/d/pg/data/postmaster.pid" ]; then
		pg_pid=$(head -n 1 "$cl_dir/d/pg/data/postmaster.pid")
	fi
	{
		echo "nodes $node_addrs pids $node_pids postgres ${pg_pid:-none} qqcluster $cl_pid"
		for p in ${node_pids//,/ } $pg_pid $cl_pid; do
			echo "pid $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null): $(grep Cpus_allowed_list "/proc/$p/status" 2>/dev/null)"
		done
	} >"$out/logs/$name.pinning.log"
	local first=${node_addrs%%,*}
	child taskset -c "$bench_cpus" "$qqbench" --addr "$first" --users "$users" --register --password "$password" \
		--json idle --duration 100ms --drain "$((5 + users * 60 / 2000))s" >"$out/logs/$name.setup.log" 2>&1 ||
		die "registering the users for $name failed (see $out/logs/$name.setup.log)"
	# Log them in once through every node (unmeasured): the nodes open
	# their PostgreSQL connections here rather than in the measured run.
	child taskset -c "$bench_cpus" "$qqbench" --addr "$node_addrs" --users "$users" --password "$password" \
		--json idle --duration 100ms --drain "$((5 + users * 60 / 2000))s" >>"$out/logs/$name.setup.log" 2>&1 ||
		die "logging the users in for $name failed (see $out/logs/$name.setup.log)"
	sleep 3 # qqd hands the Argon2id memory back 2 s after the last login
}

failed=0

# bench LABEL NAME QQBENCH-ARGS... runs qqbench and appends its JSON line.
bench() {
	local label=$1 name=$2
	shift 2
	if child taskset -c "$bench_cpus" "$qqbench" --password "$password" --label "$label" --json "$@" \
		>"$work/line" 2>"$out/logs/$name.qqbench.log"; then
		cat "$work/line" >>"$results"
		log "  $name: $(jq -c '{delivered_per_s, p50: .latency.p50_ms, p99: .latency.p99_ms, qqd_us: ((.cpu_s_per_1000_msgs // 0) * 1000), pg_us: ((.pg_cpu_s_per_1000_msgs // 0) * 1000), nats_us: ((.nats_cpu_s_per_1000_msgs // 0) * 1000), lost, errors}' "$work/line" 2>/dev/null || head -c 300 "$work/line")"
	else
		failed=$((failed + 1))
		log "  $name: FAILED: $(tail -n 3 "$out/logs/$name.qqbench.log")"
	fi
}

closed=(--users "$users" dm --window "$window" --duration "$duration" --warmup "$warmup")
pids() {
	local a=(--qqd-pid "$node_pids")
	[ -z "$pg_pid" ] || a+=(--pg-pid "$pg_pid")
	[ "$1" = nobus ] || a+=(--nats-pid "$cl_pid")
	printf '%s\n' "${a[@]}"
}

one_config() {
	local c=$1 i=$2 a
	log "$c run $i/$runs"
	case $c in
	sqlite-1node)
		start_cluster "$c-$i" -nodes a -storage sqlite -nats-servers 1
		mapfile -t a < <(pids nobus)
		bench "cl-sqlite-1node-closed-w$window-c$users" "$c-$i" --addr "$node_addrs" "${a[@]}" "${closed[@]}"
		;;
	pg-1node)
		start_cluster "$c-$i" -nodes a -standalone -nats-servers 1 -config "$out/extra-pg.yaml"
		mapfile -t a < <(pids nobus)
		bench "cl-pg-1node-closed-w$window-c$users" "$c-$i" --addr "$node_addrs" "${a[@]}" "${closed[@]}"
		;;
	pg-1node-cluster)
		start_cluster "$c-$i" -nodes a -config "$out/extra-pg.yaml"
		mapfile -t a < <(pids bus)
		bench "cl-pg-1node-cluster-closed-w$window-c$users" "$c-$i" --addr "$node_addrs" "${a[@]}" "${closed[@]}"
		;;
	pg-3nodes)
		start_cluster "$c-$i" -nodes a,b,c -config "$out/extra-pg.yaml"
		mapfile -t a < <(pids bus)
		bench "cl-pg-3nodes-closed-w$window-c$users" "$c-$i" --addr "$node_addrs" "${a[@]}" "${closed[@]}"
		local na=${node_addrs%%,*} rest=${node_addrs#*,}
		local nb=${rest%%,*} order="same cross"
		[ $((i % 2)) = 1 ] || order="cross same"
		for k in $order; do
			local to=$na
			[ "$k" = same ] || to=$nb
			bench "cl-push-$k-node-open-r$lat_rate-c$users" "$c-$i-push-$k" --addr "$na" --recipient-addr "$to" \
				"${a[@]}" --users "$users" dm --rate "$lat_rate" --duration "$duration" --warmup "$warmup"
		done
		;;
	esac
	stop_cluster
}

read -r -a cfgs <<<"$configs"
for i in $(seq "$runs"); do
	# Rotate the order each run so that drift hits every configuration.
	n=${#cfgs[@]}
	for k in $(seq 0 $((n - 1))); do
		one_config "${cfgs[$(((k + i - 1) % n))]}" "$i"
	done
done

echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"
"$qqbench" report --format csv "$results" >"$out/report.csv" || true
"$qqbench" report --format md "$results" | tee "$out/report.md"
if [ -s "$out/notes.txt" ]; then
	printf '\nNotes:\n' | tee -a "$out/report.md"
	sed 's/^/- /' "$out/notes.txt" | tee -a "$out/report.md"
fi
log "results in $out (results.jsonl, report.md, report.csv, env.txt, logs/)"
if [ "$failed" -gt 0 ]; then
	die "$failed runs failed (see $out/logs)"
fi
