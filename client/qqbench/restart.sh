#!/usr/bin/env bash
# restart.sh SRC STORAGE: how long qqd takes to accept logins again after
# kill -9 under load, on a copy of a filled store.
#
# SRC is a store filled by `qqbench fill` (users u0..u999, password
# bench-password): a SQLite file for STORAGE=sqlite, a Pebble directory
# for STORAGE=pebble. The script runs qqd (pinned to CPU 1) on a copy,
# 100 senders in a closed loop (qqbench, CPU 0), kills qqd and its plugin
# processes with SIGKILL after 12 s, starts qqd again and prints the time
# from that start to the first successful login. Loopback only; the copy
# is removed at the end. RESTART_QQD and RESTART_QQBENCH name the binaries (built
# into a temporary directory if unset).
set -euo pipefail
src=$1 st=$2
case $st in sqlite) db=qq.db ;; pebble) db=qq.pebble ;; *) echo "storage: sqlite or pebble" >&2; exit 2 ;; esac
P=$(mktemp -d /tmp/qq-restart.XXXXXX)
trap 'pkill -KILL -P $$ 2>/dev/null || true; rm -rf "$P"' EXIT
cd "$(dirname "$0")/../.."
qqd=${RESTART_QQD:-$P/qqd} qqbench=${RESTART_QQBENCH:-$P/qqbench}
[ -n "${RESTART_QQD:-}" ] || ${GO:-go} build -o "$qqd" ./daemon/qqd
[ -n "${RESTART_QQBENCH:-}" ] || ${GO:-go} build -o "$qqbench" ./client/qqbench
mkdir -p "$P/data"
cp -r "$src" "$P/data/$db"
cat > "$P/bench.yaml" <<Y
limits: {send_rate: 100000, send_burst: 100000, auth_per_ip_per_minute: 100000, auth_per_account_per_minute: 100000, max_pending_per_user: 10000000, max_connections: 100000, max_connections_per_ip: 100000}
web: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
storage: {plugin: $st}
Y
port=${RESTART_PORT:-5399}
start() { taskset -c 1 "$qqd" -config "$P/bench.yaml" -data-dir "$P/data" -listen 127.0.0.1:$port > "$P/qqd$1.log" 2>&1 & echo $!; }
pid=$(start 1)
for _ in $(seq 300); do grep -q 'qqd starting' "$P/qqd1.log" && break; sleep 0.1; done
grep -q 'qqd starting' "$P/qqd1.log" || { cat "$P/qqd1.log" >&2; exit 1; }
( taskset -c 0 "$qqbench" --addr 127.0.0.1:$port --users 100 --password bench-password dm --window 8 --duration 30s --drain 1s > "$P/load.log" 2>&1 || true ) &
sleep 12
kill -9 $pid $(pgrep -P $pid) 2>/dev/null || true
wait $pid 2>/dev/null || true
t0=$(date +%s.%N)
pid=$(start 2)
for _ in $(seq 1500); do
	taskset -c 0 "$qqbench" --addr 127.0.0.1:$port --users 1 --password bench-password --json idle --duration 1ms --drain 1s > /dev/null 2>&1 && break
	sleep 0.02
done
t1=$(date +%s.%N)
grep -q 'qqd starting' "$P/qqd2.log" || { echo "the second qqd did not start" >&2; cat "$P/qqd2.log" >&2; exit 1; }
echo "storage=$st first login $(echo "$t1 - $t0" | bc) s after the restart began"
kill -TERM $pid; wait $pid 2>/dev/null || true
