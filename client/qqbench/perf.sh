#!/usr/bin/env bash
# perf.sh runs qq's performance suite end to end and prints the report:
# `make perf` (docs/performance.md, "Reproduce everything: make perf").
#
# It builds qqd and qqbench into a temporary directory, and for every run
# starts a fresh qqd (fresh data dir, pinned to PERF_QQD_CPUS; its plugin
# processes inherit the pinning) on 127.0.0.1, creates the users before
# the run, runs qqbench pinned to PERF_BENCH_CPUS, and stops that qqd.
# Every JSON result line goes to OUT/results.jsonl; at the end
# `qqbench report` prints the Markdown table (also OUT/report.md, and
# OUT/report.csv).
#
# Knobs (environment):
#   PERF_CASES       cases to run, space separated (default: all of
#                    dm-closed dm-open plugins idle sweep group; also 10m, not
#                    in the default: dm closed loop and history/offline
#                    reads on a copy of a database of PERF_10M_MESSAGES;
#                    ws and ws-idle, not in the default either: dm closed
#                    loop, and idle, over TCP and over the WebSocket
#                    gateway, alternating, for CPU per message and memory
#                    per idle session side by side)
#   PERF_10M_DB      10m's database, filled once if missing (default
#                    the directory perf-results/10m.pebble, or
#                    perf-results/10m.db with PERF_STORAGE=sqlite:
#                    10 million messages take about
#                    6 minutes and 2.4 GB; each run copies it)
#   PERF_10M_MESSAGES  messages 10m fills in (default 10000000)
#   PERF_RUNS        runs per case (default 3)
#   PERF_QUICK=1     smoke test: C=100, 5 s runs, 1 run, idle C=100, a
#                    2-step sweep (under 2 minutes in all)
#   PERF_OUT         output directory (default perf-results/<date-time>)
#   PERF_USERS       users of dm/plugins/sweep (default 1000)
#   PERF_DURATION    measured duration of dm/plugins runs (default 20s)
#   PERF_RATE        open-loop rate of dm-open in msg/s (default 20000)
#   PERF_IDLE_USERS  connections of idle (default 10000)
#   PERF_IDLE_HOLD   how long idle holds them while it measures qqd's CPU
#                    (default 5s; the CPU's resolution is 10 ms)
#   PERF_SETUP       fill (default): create the users in the stopped qqd's
#                    database with `qqbench fill` (one Argon2id hash for
#                    all); register: register them through qqd in an
#                    unmeasured warm-up run (one hash each, about 20 ms
#                    on one core)
#   PERF_GROUP_MEMBERS, PERF_GROUP_ONLINE, PERF_GROUP_WINDOW  group's
#                    group size (default 500), members online and
#                    sending (default 100) and sends in flight per member
#                    (default 1); each run of group is paired with a dm run
#                    of the same online users and window, run just before
#                    it on a fresh qqd, for the CPU per push side by side
#   PERF_QQD_CPUS, PERF_BENCH_CPUS  taskset CPU lists (default 1 and 0)
#   PERF_STORAGE     the storage plugin of every case but storage:
#                    pebble (default, as qqd's) or sqlite
#   (case storage, not in the default: dm closed loop W=8 and dm open
#                    loop at 1,000 msg/s (PERF_LOW_RATE), on the sqlite
#                    and the pebble storage of the same build, in ABBA
#                    order)
#   PERF_QQD_BIN     a qqd binary to measure instead of building this
#                    tree's (for example an older version, to compare)
#   GO               the go command (default go)
set -euo pipefail

log() { printf 'perf: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=${PERF_OUT:-perf-results/$(date +%Y-%m-%d-%H%M%S)}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/../.."

GO=${GO:-go}
quick=${PERF_QUICK:-0}
cases=${PERF_CASES:-dm-closed dm-open plugins idle sweep group}
group_members=${PERF_GROUP_MEMBERS:-500}
group_online=${PERF_GROUP_ONLINE:-100}
group_window=${PERF_GROUP_WINDOW:-1}
setup=${PERF_SETUP:-fill}
qqd_cpus=${PERF_QQD_CPUS:-1}
bench_cpus=${PERF_BENCH_CPUS:-0}
if [ "$quick" = 1 ]; then
	runs=${PERF_RUNS:-1}
	users=${PERF_USERS:-100}
	duration=${PERF_DURATION:-5s}
	warmup=1s
	rate=${PERF_RATE:-2000}
	idle_users=${PERF_IDLE_USERS:-100}
	idle_settle=3s idle_hold=1s
	sweep_args="--from 1000 --step 1000 --max-steps 2 --duration 5s"
else
	runs=${PERF_RUNS:-3}
	users=${PERF_USERS:-1000}
	duration=${PERF_DURATION:-20s}
	warmup=2s
	rate=${PERF_RATE:-20000}
	idle_users=${PERF_IDLE_USERS:-10000}
	idle_settle=10s idle_hold=${PERF_IDLE_HOLD:-5s}
	sweep_args="--from 1000 --step 1000 --max-steps 30 --duration 10s"
fi
password=bench-password
storage=${PERF_STORAGE:-pebble}
case $storage in sqlite | pebble) ;; *) die "PERF_STORAGE=$storage: want sqlite or pebble" ;; esac
low_rate=${PERF_LOW_RATE:-1000}

for c in $cases; do
	case $c in
	dm-closed | dm-open | plugins | idle | sweep | group | 10m | ws | ws-idle | storage) ;;
	*) die "unknown case $c in PERF_CASES (want dm-closed, dm-open, plugins, idle, sweep, group, 10m, ws, ws-idle, storage)" ;;
	esac
done
case $setup in fill | register) ;; *) die "PERF_SETUP=$setup: want fill or register" ;; esac
command -v taskset >/dev/null || die "taskset not found (util-linux): qqd and qqbench must be pinned to separate CPUs"
taskset -c "$qqd_cpus" true 2>/dev/null && taskset -c "$bench_cpus" true 2>/dev/null ||
	die "cannot pin to CPUs $qqd_cpus and $bench_cpus (this machine has $(nproc)); set PERF_QQD_CPUS and PERF_BENCH_CPUS"

# Everything temporary lives in work (short paths: qqd puts its admin unix
# socket in the data dir). The trap stops the qqd this script started.
work=$(mktemp -d /tmp/qqperf.XXXXXX)
qqd_pid=
stop_qqd() {
	[ -n "$qqd_pid" ] || return 0
	if kill -0 "$qqd_pid" 2>/dev/null; then
		kill -TERM "$qqd_pid" 2>/dev/null || true
		for _ in $(seq 150); do
			kill -0 "$qqd_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$qqd_pid" 2>/dev/null; then
			log "qqd $qqd_pid did not stop in 15 s; killing it and its plugins"
			# shellcheck disable=SC2046 # one pid per word
			kill -KILL "$qqd_pid" $(pgrep -P "$qqd_pid") 2>/dev/null || true
		fi
	fi
	wait "$qqd_pid" 2>/dev/null || true
	qqd_pid=
}
# child runs a command in the background and waits for it, so that a
# signal to this script runs the trap at once rather than after the
# command; cleanup stops it.
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
	stop_qqd
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out/logs"
results=$out/results.jsonl
: >"$results"
log "output in $out"

log "building qqd and qqbench"
if [ -n "${PERF_QQD_BIN:-}" ]; then
	mkdir -p "$work/bin" && cp "$PERF_QQD_BIN" "$work/bin/qqd"
else
	$GO build -o "$work/bin/qqd" ./daemon/qqd
fi
$GO build -o "$work/bin/qqbench" ./client/qqbench
qqd=$work/bin/qqd
qqbench=$work/bin/qqbench

# The bench configuration of docs/performance.md: limits raised so that
# they do not throttle the load, metrics on a free loopback port, default
# (out-of-process) plugins. plugins-in.yaml is the same with in-process
# plugins.
cat >"$out/bench.yaml" <<'EOF'
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
web:
  listen: "127.0.0.1:0"
filters:            # the default chain, with antispam lifted to its maxima
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
EOF
# Each storage named explicitly: pebble is qqd's default, and a qqd
# refuses to run it by default beside the qq.db that fill makes for sqlite.
{
	cat "$out/bench.yaml"
	printf 'storage: {plugin: sqlite}\n'
} >"$out/bench-sqlite.yaml"
{
	cat "$out/bench.yaml"
	printf 'storage: {plugin: pebble}\n'
} >"$out/bench-pebble.yaml"
cp "$out/bench-$storage.yaml" "$out/bench.yaml"
{
	cat "$out/bench.yaml"
	printf 'plugins: {in_process: true}\n'
} >"$out/bench-inproc.yaml"
checks="bench bench-inproc"
if [ "$storage" = pebble ] || [[ " $cases " == *" storage "* ]]; then
	checks="$checks bench-sqlite bench-pebble" # a qqd older than the pebble storage (PERF_QQD_BIN) refuses these
fi
for f in $checks; do
	"$qqd" -config "$out/$f.yaml" -t >/dev/null 2>&1 || die "qqd -t refuses $out/$f.yaml"
done

# Idle needs C client sockets in qqbench and C accepted ones in qqd. The
# open-file limit is per process, so each needs about C plus a margin.
if [[ " $cases " == *" idle "* || " $cases " == *" ws-idle "* ]]; then
	need=$((idle_users + 1000))
	hard=$(ulimit -Hn)
	if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ]; then
		if [ "$hard" = unlimited ] || [ "$hard" -ge "$need" ]; then
			ulimit -Sn "$need"
		else # raising the hard limit needs privilege
			ulimit -n "$need" 2>/dev/null || ulimit -Sn "$hard"
		fi
	fi
	lim=$(ulimit -n)
	if [ "$lim" != unlimited ] && [ "$lim" -lt "$need" ]; then
		was=$idle_users
		idle_users=$(((lim - 1000) / 1000 * 1000))
		[ "$idle_users" -ge 100 ] || idle_users=$((lim / 2))
		log "NOTE: open-file limit $lim < $need: idle runs at C=$idle_users instead of $was"
		echo "idle ran at C=$idle_users instead of $was: open-file limit $lim (ulimit -n), needs C+1000 per process" >>"$out/notes.txt"
	fi
fi

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
	echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
	echo "qqd cpus: $qqd_cpus, qqbench cpus: $bench_cpus"
	echo "open files: $(ulimit -n)"
	echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "cases: $cases; runs: $runs; quick: $quick; setup: $setup; storage: $storage"
	echo "users: $users; duration: $duration; warmup: $warmup; rate: $rate; idle users: $idle_users; sweep: $sweep_args"
} >"$out/env.txt"

# start_qqd CONFIG USERS NAME [DB] starts a fresh qqd with USERS users
# (u0..) and sets qqd_pid, addr and web_addr (its WebSocket gateway's);
# with DB, on a copy of that database
# (whose users must exist). (idle ignores --drain except in its
# deadline: see drain_for.)
start_qqd() {
	local config=$1 n=$2 name=$3 src=${4:-}
	local data qlog
	data=$(mktemp -d "$work/data.XXXXXX")
	qlog=$out/logs/$name.qqd.log
	# The storage is the one the config names (bench-pebble.yaml, or
	# PERF_STORAGE=pebble); its database is qq.db or the qq.pebble
	# directory in the data dir.
	local st=sqlite db=qq.db
	if grep -q '^storage: {plugin: pebble}' "$config"; then
		st=pebble db=qq.pebble
	fi
	if [ -n "$src" ]; then
		cp -r "$src" "$data/$db"
	elif [ "$setup" = fill ]; then
		"$qqbench" fill --storage "$st" --db "$data/$db" --users "$n" --messages 1 --pending-fraction 0 \
			--password "$password" --json >"$out/logs/$name.setup.log" 2>&1 ||
			die "fill for $name failed: $(tail -n 3 "$out/logs/$name.setup.log")"
	fi
	: >"$qlog"
	taskset -c "$qqd_cpus" "$qqd" -config "$config" -data-dir "$data" -listen 127.0.0.1:0 >"$qlog" 2>&1 &
	qqd_pid=$!
	addr= web_addr=
	for _ in $(seq 300); do
		# "qqd starting" names every listener, bound by then.
		addr=$(sed -n 's/.*msg="qqd starting" .* listen=\([0-9.]*:[0-9]*\).*/\1/p' "$qlog" || true)
		web_addr=$(sed -n 's/.*msg="qqd starting" .* web_listen=\([0-9.]*:[0-9]*\).*/\1/p' "$qlog" || true)
		[ -z "$addr" ] || break
		kill -0 "$qqd_pid" 2>/dev/null || die "qqd exited before listening: $(tail -n 5 "$qlog")"
		sleep 0.1
	done
	[ -n "$addr" ] || die "qqd did not log \"qqd starting\" within 30 s (see $qlog)"
	case $addr in 127.*) ;; *) die "qqd listens on $addr, not loopback" ;; esac
	# Record that the plugins inherited the pinning.
	for p in $qqd_pid $(pgrep -P "$qqd_pid" || true); do
		echo "pid $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null): $(grep Cpus_allowed_list "/proc/$p/status" 2>/dev/null)"
	done >"$out/logs/$name.pinning.log"
	# Unmeasured warm-up: register the users (register), or log one in
	# (fill). qqd hands the Argon2id memory of its startup and of the
	# logins back to the OS 2 s after the last login; the wait makes every
	# run, and idle's "before" RSS, start from there.
	local wn=1 reg=
	if [ "$setup" = register ] && [ -z "$src" ]; then
		wn=$n reg=--register
	fi
	child taskset -c "$bench_cpus" "$qqbench" --addr "$addr" --users "$wn" $reg --password "$password" \
		--json idle --duration 100ms --drain "$(drain_for "$wn")s" >>"$out/logs/$name.setup.log" 2>&1 ||
		die "warm-up for $name failed (see $out/logs/$name.setup.log)"
	sleep 3
}

# drain_for N returns a --drain in seconds that makes qqbench's run
# deadline (2 min + warm-up + duration + settle + 2 × drain) long enough
# for N Argon2id logins (about 20 ms each on an idle core; 60 ms leaves
# room for a busy machine) in the idle scenario, which does not use
# --drain otherwise.
drain_for() { echo $((5 + $1 * 60 / 2000)); }

failed=0

# bench LABEL NAME ARGS... runs qqbench against the running qqd and
# appends its JSON line to results.jsonl; over its WebSocket gateway
# when transport is ws.
transport=tcp
bench() {
	local label=$1 name=$2
	shift 2
	local line to=(--addr "$addr")
	if [ "$transport" = ws ]; then
		[ -n "$web_addr" ] || die "qqd has no web listener (web.listen)"
		to=(--addr "$web_addr" --transport ws)
	fi
	if child taskset -c "$bench_cpus" "$qqbench" "${to[@]}" --password "$password" --qqd-pid "$qqd_pid" \
		--label "$label" --json "$@" >"$work/line" 2>"$out/logs/$name.qqbench.log"; then
		line=$(cat "$work/line")
		printf '%s\n' "$line" >>"$results"
		log "  $name: $(summary "$line")"
	else
		failed=$((failed + 1))
		log "  $name: FAILED: $(tail -n 3 "$out/logs/$name.qqbench.log")"
	fi
}

# summary picks the headline figures out of a JSON result line.
summary() {
	local f
	for f in delivered_per_s p99_ms per_conn_after_settle_bytes stop; do
		printf '%s ' "$(printf '%s' "$1" | grep -oE "\"$f\":(\"[^\"]*\"|[^,}]*)" | head -n 1 || true)"
	done
}

# one_run CONFIG USERS LABEL N ARGS... is one run on a fresh qqd; with
# src_db set, on a copy of that database.
src_db=
one_run() {
	local config=$1 n=$2 label=$3 i=$4
	shift 4
	log "$label run $i/$runs"
	start_qqd "$config" "$n" "$label-$i" "$src_db"
	bench "$label" "$label-$i" "$@"
	stop_qqd
}

for c in $cases; do
	case $c in
	dm-closed)
		for i in $(seq "$runs"); do
			one_run "$out/bench.yaml" "$users" "dm-closed-w8-c$users" "$i" \
				--users "$users" dm --window 8 --duration "$duration" --warmup "$warmup"
		done
		;;
	group)
		for i in $(seq "$runs"); do
			one_run "$out/bench.yaml" "$group_online" "dm-closed-w$group_window-c$group_online" "$i" \
				--users "$group_online" dm --window "$group_window" --duration "$duration" --warmup "$warmup"
			one_run "$out/bench.yaml" "$group_members" "group-m$group_members-closed-w$group_window-c$group_online" "$i" \
				--users "$group_online" group --members "$group_members" --window "$group_window" \
				--duration "$duration" --warmup "$warmup"
		done
		;;
	dm-open)
		for i in $(seq "$runs"); do
			one_run "$out/bench.yaml" "$users" "dm-open-r$rate-c$users" "$i" \
				--users "$users" dm --rate "$rate" --duration "$duration" --warmup "$warmup"
		done
		;;
	plugins)
		# The same qqd binary with out-of-process and in-process plugins,
		# in ABBA order so that drift hits both alike.
		for i in $(seq "$runs"); do
			order="out in"
			[ $((i % 2)) = 1 ] || order="in out"
			for p in $order; do
				config=$out/bench.yaml
				[ "$p" = out ] || config=$out/bench-inproc.yaml
				one_run "$config" "$users" "plugins-$p-closed-w8-c$users" "$i" \
					--users "$users" dm --window 8 --duration "$duration" --warmup "$warmup"
			done
		done
		;;
	idle)
		# A fresh qqd per run matters most here: Go keeps its heap
		# high-water mark.
		for i in $(seq "$runs"); do
			one_run "$out/bench.yaml" "$idle_users" "idle-c$idle_users" "$i" \
				--users "$idle_users" idle --settle "$idle_settle" --duration "$idle_hold" \
				--drain "$(drain_for "$idle_users")s"
		done
		;;
	sweep)
		for i in $(seq "$runs"); do
			# shellcheck disable=SC2086 # sweep_args is a list of flags
			one_run "$out/bench.yaml" "$users" "sweep-c$users" "$i" \
				--users "$users" sweep $sweep_args \
				--csv "$out/sweep-c$users-$i.csv" --svg "$out/sweep-c$users-$i.svg"
		done
		;;
	ws)
		# The dm closed loop over TCP and over the WebSocket gateway of
		# the same qqd build, in ABBA order, each on a fresh qqd: CPU per
		# message side by side (issue 13: within 25% of TCP).
		for i in $(seq "$runs"); do
			order="tcp ws"
			[ $((i % 2)) = 1 ] || order="ws tcp"
			for transport in $order; do
				one_run "$out/bench.yaml" "$users" "transport-$transport-closed-w8-c$users" "$i" \
					--users "$users" dm --window 8 --duration "$duration" --warmup "$warmup"
			done
		done
		transport=tcp
		;;
	ws-idle)
		# Memory per idle session over TCP and over WebSocket, ABBA.
		for i in $(seq "$runs"); do
			order="tcp ws"
			[ $((i % 2)) = 1 ] || order="ws tcp"
			for transport in $order; do
				one_run "$out/bench.yaml" "$idle_users" "transport-idle-$transport-c$idle_users" "$i" \
					--users "$idle_users" idle --settle "$idle_settle" --duration "$idle_hold" \
					--drain "$(drain_for "$idle_users")s"
			done
		done
		transport=tcp
		;;
	storage)
		# The same build on the sqlite and the pebble storage, ABBA: the
		# closed loop (CPU per message at saturation) and the open loop at
		# a low rate (CPU per message and latency with batches of one or
		# two).
		for i in $(seq "$runs"); do
			order="sqlite pebble"
			[ $((i % 2)) = 1 ] || order="pebble sqlite"
			for st in $order; do
				one_run "$out/bench-$st.yaml" "$users" "storage-$st-closed-w8-c$users" "$i" \
					--users "$users" dm --window 8 --duration "$duration" --warmup "$warmup"
			done
			for st in $order; do
				one_run "$out/bench-$st.yaml" "$users" "storage-$st-open-r$low_rate-c$users" "$i" \
					--users "$users" dm --rate "$low_rate" --duration "$duration" --warmup "$warmup"
			done
		done
		;;
	10m)
		# A database of the storage PERF_STORAGE names (a file for
		# sqlite, a directory for pebble).
		db=${PERF_10M_DB:-$PWD/perf-results/10m.$([ "$storage" = sqlite ] && echo db || echo pebble)}
		if [ ! -e "$db" ]; then
			log "filling $db with ${PERF_10M_MESSAGES:-10000000} messages (once)"
			mkdir -p "$(dirname "$db")"
			"$qqbench" fill --storage "$storage" --db "$db" --messages "${PERF_10M_MESSAGES:-10000000}" --users "$users" \
				--password "$password" --json >"$out/logs/10m-fill.log" 2>&1 ||
				die "fill of $db failed: $(tail -n 3 "$out/logs/10m-fill.log")"
		fi
		src_db=$db
		for i in $(seq "$runs"); do
			one_run "$out/bench.yaml" "$users" "dm-closed-w8-c$users-10m" "$i" \
				--users "$users" dm --window 8 --duration "$duration" --warmup "$warmup"
			one_run "$out/bench.yaml" "$users" "history-r500-c$users-10m" "$i" \
				--users "$users" history --rate 500 --duration "$duration" --warmup "$warmup"
		done
		src_db=
		;;
	esac
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
