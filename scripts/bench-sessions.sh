#!/usr/bin/env bash
# Load benchmark of POST /v1/sessions on the real binary, with wrk as a separate load process
# on loopback, followed by a durability check: the server is SIGKILLed right after the load,
# restarted on the same data directory, and must report at least as many sessions as wrk got
# 2xx answers for.
#
# Environment (defaults in brackets):
#   DURATION     seconds of load per run [15]
#   RUNS         number of runs; the summary gives the median of each figure [3]
#   THREADS      wrk threads [1]
#   CONNECTIONS  wrk connections [64]: the goal's setting (20k/s, p99 < 10 ms). On 2 cores at
#                58232be: c64 20.7-23.4k/s p99 6.1-7.1 ms; c80 24.3-24.7k/s p99 7.1-7.3 ms;
#                c96 26.7-27.8k/s p99 7.8 ms (docs/benchmarks.md); -t2 gave the same
#                throughput for more wrk CPU
#   KEEP         1: keep the temp dir (config, data, logs, wrk output) [0; kept on failure]
#   BIN          a prebuilt trackline binary to measure instead of building bin/trackline
#                (for A/B runs of two builds) [bin/trackline, built]
#
# The server and wrk share the machine's cores (2 on the reference machine); the figures are
# for that setup. Exits non-zero when a run loses answered sessions, answers nothing, or the
# server dies.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
KEEP=${KEEP:-0}
BIN=${BIN:-}

CUSTOMER=bench
SITE_KEY=bench-site-key-0001
ORIGIN=http://127.0.0.1
TOKEN=bench-admin-token-0001
CLK_TCK=$(getconf CLK_TCK)

say() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }

for cmd in wrk curl jq go; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (run scripts/deps.sh)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench.XXXXXX")
server_pid=""
ok_exit=0
cleanup() {
	local rc=$?
	if [ -n "$server_pid" ]; then
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	if [ "$rc" -eq 0 ] && [ "$ok_exit" -eq 1 ] && [ "$KEEP" != 1 ]; then
		rm -rf "$tmp"
	else
		say "kept $tmp (config, logs, wrk output)"
	fi
}
trap cleanup EXIT

if [ -z "$BIN" ]; then
	BIN=bin/trackline
	say "go build -o $BIN ./cmd/trackline"
	go build -ldflags "-X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" \
		-o "$BIN" ./cmd/trackline
fi
[ -x "$BIN" ] || die "$BIN is not an executable"

cat >"$tmp/config.yaml" <<YAML
data_dir: $tmp/data
country_code: "31"
listen:
  http: 127.0.0.1:0
  admin: 127.0.0.1:0
  metrics: 127.0.0.1:0
admin_token: $TOKEN
pool:
  lease: 30m
  grace: 30m
  rate_limit: 1000000
  # wrk drives every session from 127.0.0.1, one client: the per-client limit (a quarter of
  # the pool per lease by default) would refuse all but 250. It still runs on every request.
  client_share: 1000000
customers:
  - id: $CUSTOMER
    name: Bench BV
    status: active
    site_key: $SITE_KEY
    allowed_origins: ["$ORIGIN"]
    business_lines: ["sip:+31852087972@127.0.0.1:5090"]
    display_numbers: ["+31852087972"]
    display_format: national
    pool_range: {first: "+31850100000", count: 1000}
YAML

# start_server DATA LOG: starts the binary, waits (at most 30 s) for the ready line and sets
# server_pid, http_addr and admin_addr.
start_server() {
	local data=$1 log=$2 line="" i
	: >"$log"
	"$BIN" serve --config "$tmp/config.yaml" --data "$data" \
		--http 127.0.0.1:0 --admin 127.0.0.1:0 --metrics 127.0.0.1:0 \
		--log-format json >/dev/null 2>"$log" &
	server_pid=$!
	disown "$server_pid" # no "Killed" job notice; stop_server polls instead of wait
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 '"msg":"ready"' "$log" || true)
		[ -n "$line" ] && break
		if ! kill -0 "$server_pid" 2>/dev/null; then
			server_pid=""
			tail -20 "$log" >&2
			die "server exited before ready (log: $log)"
		fi
		sleep 0.1
	done
	[ -n "$line" ] || { tail -20 "$log" >&2; die "no ready line within 30 s (log: $log)"; }
	http_addr=$(jq -r '.http' <<<"$line")
	admin_addr=$(jq -r '.admin' <<<"$line")
}

# stop_server SIGNAL: signals the server and waits at most 10 s for it to exit, then SIGKILLs
# it and waits until it is gone.
stop_server() {
	local sig=$1 i
	kill "-$sig" "$server_pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$server_pid" 2>/dev/null || break
		[ "$i" -eq 100 ] && kill -KILL "$server_pid" 2>/dev/null
		sleep 0.1
	done
	server_pid=""
}

# cpu_ticks PID: utime+stime (fields 14 and 15 of /proc/PID/stat), in clock ticks.
cpu_ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat")
	rest=${stat##*) } # fields from 3 (state) on; comm may hold spaces
	read -ra f <<<"$rest"
	echo $((f[11] + f[12]))
}

# machine_busy: CPU ticks spent by all processes on all cores (user nice system irq softirq
# steal in /proc/stat), to see how much CPU others took during a run.
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# field LINE KEY: the value of KEY=value in a WRK_RESULT line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

# median VALUE...: the middle value, or the mean of the two middle ones.
median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
		END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

cols="run sessions/s p50_ms p99_ms p99.9_ms non2xx errors durable cpu_s cpu_us/session peak_rss_MiB wrk_cpu_s other_cpu_s"
results=()
failed=0
busy_machine=0
TIMEFORMAT='%3U %3S' # bash's time: wrk's user and system CPU
say "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $RUNS run(s), $(nproc) cores shared by server and wrk"

for ((run = 1; run <= RUNS; run++)); do
	data="$tmp/data-$run"
	mkdir -p "$data"
	start_server "$data" "$tmp/server-$run.log"
	pid=$server_pid
	say "run $run: server pid $pid, http $http_addr, admin $admin_addr"

	cpu0=$(cpu_ticks "$pid")
	busy0=$(machine_busy)
	{
		time SITE_KEY=$SITE_KEY ORIGIN=$ORIGIN timeout $((DURATION + 60)) \
			wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency \
			-s scripts/wrk-sessions.lua "http://$http_addr/v1/sessions" | tee "$tmp/wrk-$run.txt"
	} 2>"$tmp/wrk-$run.time"
	kill -0 "$pid" 2>/dev/null || die "server died during the load (log: $tmp/server-$run.log)"
	cpu1=$(cpu_ticks "$pid")
	busy1=$(machine_busy)
	wrk_cpu=$(tail -1 "$tmp/wrk-$run.time") # "user sys" in seconds (TIMEFORMAT)
	hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
	stop_server KILL

	res=$(grep -m1 '^WRK_RESULT ' "$tmp/wrk-$run.txt") || die "no WRK_RESULT line from wrk"
	ok=$(field "$res" ok)
	non2xx=$(field "$res" non2xx)
	errors=$(field "$res" errors)
	[ "$ok" -gt 0 ] || die "run $run: no 2xx answer ($non2xx non-2xx, $errors socket errors; log: $tmp/server-$run.log)"

	start_server "$data" "$tmp/server-$run-restart.log"
	pool=$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" \
		"http://$admin_addr/v1/customers/$CUSTOMER/pool") || die "GET pool status failed after restart"
	stop_server TERM
	stored=$(jq -r '.sessions_total // empty' <<<"$pool")
	[ -n "$stored" ] || die "pool status has no sessions_total: $pool"
	if [ "$stored" -ge "$ok" ]; then
		durable=yes
	else
		durable=no
		failed=1
	fi
	say "run $run: $ok sessions answered 2xx, $stored stored after SIGKILL and restart: durable $durable"

	row=$(awk -v run="$run" -v res=" $res" -v ok="$ok" -v non2xx="$non2xx" -v errors="$errors" \
		-v durable="$durable" -v ticks=$((cpu1 - cpu0)) -v busy=$((busy1 - busy0)) \
		-v wrk="$wrk_cpu" -v hz="$CLK_TCK" -v hwm="$hwm_kb" '
		function f(k,   m) { m = res; sub(".* " k "=", "", m); sub(" .*", "", m); return m }
		BEGIN {
			cpu = ticks / hz
			split(wrk, w, " ")
			other = busy / hz - cpu - w[1] - w[2]
			if (other < 0) other = 0
			printf "%s %.0f %.2f %.2f %.2f %d %d %s %.2f %.1f %.1f %.2f %.2f\n", run, f("rps"),
				f("p50_us") / 1000, f("p99_us") / 1000, f("p999_us") / 1000, non2xx, errors,
				durable, cpu, cpu * 1e6 / ok, hwm / 1024, w[1] + w[2], other
		}')
	results+=("$row")
	other=$(awk '{print $13}' <<<"$row")
	if awk -v o="$other" -v d="$DURATION" -v n="$(nproc)" 'BEGIN {exit !(o > 0.05 * d * n)}'; then
		say "WARNING: run $run: other processes used $other CPU-s during the load; figures are not representative"
		busy_machine=1
	fi
done

echo
echo "POST /v1/sessions, wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s per run, $(nproc) cores shared"
{
	echo "$cols"
	printf '%s\n' "${results[@]}"
	med=(median)
	for ((c = 2; c <= 13; c++)); do
		if [ "$c" -eq 8 ]; then
			med+=("$([ "$failed" -eq 0 ] && echo yes || echo no)")
			continue
		fi
		med+=("$(median $(printf '%s\n' "${results[@]}" | awk -v c=$c '{print $c}'))")
	done
	echo "${med[*]}"
} | column -t
echo "cpu_s: server user+system CPU during the load; peak_rss: VmHWM; durable: every 2xx session"
echo "survived SIGKILL; other_cpu_s: CPU used by anything but the server and wrk during the load"
[ "$busy_machine" -eq 0 ] || say "WARNING: other processes competed for the CPU; rerun on a quiet machine"

[ "$failed" -eq 0 ] || die "durability: answered sessions were lost after SIGKILL"
ok_exit=1
