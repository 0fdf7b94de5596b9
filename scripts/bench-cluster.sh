#!/usr/bin/env bash
# Cluster figures (issue 22, docs/benchmarks.md "Cluster figures"): new web sessions a second
# and the CPU a session and a call cost, for
#   bbolt  one node on bbolt (the default),
#   pg1    one node on PostgreSQL,
#   pg3    three nodes on one PostgreSQL (127.0.0.2-4),
# with the CPU of every process: each node, PostgreSQL (the postmaster and all its backends),
# the load generators. PostgreSQL (Debian's 15, fsync on) and SeaweedFS (the keys and
# recordings of pg1/pg3 need an object store) run from a temporary directory and are killed by
# their PIDs at the end. Everything runs on loopback and shares the machine's cores: on 2
# cores the three nodes, the database and the load share them, so read the CPU per session and
# per call (the cost model), not the three-node rate, as what a cluster of real machines does.
#
# Phases per mode:
#   sessions  wrk POST /v1/sessions for DURATION s (CONNECTIONS in all, split over the nodes)
#   calls     sipp places CALLS calls at CALL_RATE/s (split over the nodes, sent to each node
#             directly: the nodes are measured, not Kamailio), 1 s of talk, direct media
#
# Environment (defaults in brackets):
#   MODES        which modes, in order ["bbolt pg1 pg3"]
#   DURATION     seconds of session load [10]
#   CONNECTIONS  wrk connections in all [64]
#   CALL_RATE    new calls a second in all [30]
#   CALLS        calls per mode [CALL_RATE * 10]
#   BIN          the trackline binary [bin/trackline, built]
#   KEEP         1: keep the temp dir [0]
#   PG_STATS     1: load pg_stat_statements (with planning times) and print, after each
#                PostgreSQL mode's session phase, its statements by total time [0]; for
#                profiling only (it costs PostgreSQL CPU itself)
#   PROFILE      1: take a CPU profile of node 1 over each session phase and print its top
#                functions (go tool pprof) [0]
# TRACKLINE_* variables are passed to the nodes. Needs wrk, sipp, curl, jq, PostgreSQL 15 and
# weed (scripts/deps.sh weed). Run it under the bench lock:
#   flock /tmp/trackline-bench.lock bash scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"bbolt pg1 pg3"}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
CALL_RATE=${CALL_RATE:-30}
CALLS=${CALLS:-$((CALL_RATE * 10))}
KEEP=${KEEP:-0}
PG_STATS=${PG_STATS:-0}
PROFILE=${PROFILE:-0}
BIN=${BIN:-}
PGBIN=/usr/lib/postgresql/15/bin
WEED=${WEED:-$(go env GOPATH)/bin/weed-$(sed -n 's/^WEED_VERSION=//p' scripts/deps.sh)}
CLK_TCK=$(getconf CLK_TCK)
SITE_KEY=bench-site-key-0001
TOKEN=bench-admin-token-0001
FLYER=+31850200001
MASTER=6b0a3c1f2e4d5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1

say() { printf 'bench-cluster: %s\n' "$*" >&2; }
die() { printf 'bench-cluster: FAIL: %s\n' "$*" >&2; exit 1; }
for cmd in wrk sipp curl jq; do command -v "$cmd" >/dev/null || die "$cmd not found (scripts/deps.sh)"; done
[ -x "$PGBIN/postgres" ] || die "PostgreSQL 15 not installed (scripts/deps.sh)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench-cluster.XXXXXX")
chmod 755 "$tmp"
pids=() # every process started here, killed by PID at the end
pg_pid="" weed_pid=""
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	[ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null && sleep 1 && kill -KILL -- "-$pg_pid" 2>/dev/null || true
	[ -n "$weed_pid" ] && kill -KILL -- "-$weed_pid" 2>/dev/null || true
	if [ "$KEEP" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

if [ -z "$BIN" ]; then
	BIN=bin/trackline
	go build -o "$BIN" ./cmd/trackline
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ticks PID: utime+stime of a process; with children (of a postmaster), its reaped children's too.
ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat") || { echo 0; return; }
	rest=${stat##*) }
	set -- $rest
	echo $(( ${12} + ${13} + ${14} + ${15} ))
}
# pg_ticks: the postmaster, its reaped children and its live children (the backends).
pg_ticks() {
	local t c
	t=$(ticks "$pg_pid")
	for c in $(ps -o pid= --ppid "$pg_pid"); do
		local stat rest
		stat=$(<"/proc/$c/stat") 2>/dev/null || continue
		rest=${stat##*) }
		set -- $rest
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

start_pg() {
	local port as=()
	port=$(free_port)
	mkdir -p "$tmp/pg"
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || die "no postgres user to run PostgreSQL as"
		chown postgres "$tmp/pg"
		as=(setpriv --reuid=postgres --regid="$(id -g postgres)" --clear-groups)
	fi
	"${as[@]}" "$PGBIN/initdb" -D "$tmp/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
	local stats=()
	[ "$PG_STATS" = 1 ] && stats=(-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all
		-c pg_stat_statements.track_planning=on)
	setsid "${as[@]}" "$PGBIN/postgres" -D "$tmp/pg/data" -p "$port" -k "$tmp/pg" -c listen_addresses=127.0.0.1 \
		-c fsync=on -c synchronous_commit=on -c max_connections=300 -c shared_buffers=128MB "${stats[@]}" \
		>"$tmp/pg/log" 2>&1 &
	pg_pid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		"$PGBIN/pg_isready" -h 127.0.0.1 -p "$port" -q && break
		sleep 0.2
	done
	"$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE trackline' >/dev/null
	DSN="postgres://postgres@127.0.0.1:$port/trackline?sslmode=disable"
}

start_weed() {
	local p=() i
	for i in 1 2 3 4 5 6 7 8; do p+=("$(free_port)"); done
	mkdir -p "$tmp/weed"
	AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret setsid "$WEED" server -s3 -filer \
		-ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$tmp/weed" \
		-master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
		-filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
		-s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -master.volumeSizeLimitMB=64 -volume.max=16 \
		>"$tmp/weed/log" 2>&1 &
	weed_pid=$!
	S3="127.0.0.1:${p[6]}"
	for ((i = 0; i < 300; i++)); do
		curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:bench-secret -X PUT "http://$S3/trackline" >/dev/null 2>&1 && return
		sleep 0.3
	done
	die "SeaweedFS not ready (log: $tmp/weed/log)"
}

# node_config N STORE: a node's config (STORE: bbolt or postgres).
node_config() {
	local n=$1 store=$2 f="$tmp/node$1.yaml"
	cat >"$f" <<YAML
node_id: node-$n
country_code: "31"
admin_token: $TOKEN
pool:
  lease: 30m
  grace: 30m
  rate_limit: 1000000
  client_share: 1000000
sip:
  trunks:
    - {name: bench, sources: ["127.0.0.0/8"]}
customers:
  - id: bench
    name: Bench BV
    status: active
    site_key: $SITE_KEY
    allowed_origins: ["http://127.0.0.1"]
    business_lines: ["sip:+31852087972@127.0.0.1:$LINE_PORT"]
    display_numbers: ["+31852087972"]
    display_format: national
    pool_range: {first: "+31850100000", count: 1000}
    channels:
      - {name: Flyer, numbers: ["$FLYER"]}
YAML
	if [ "$store" = postgres ]; then
		cat >>"$f" <<YAML
store: {driver: postgres, dsn: "$DSN"}
recordings:
  object_store: {endpoint: "$S3", bucket: trackline, access_key: bench, secret_key: bench-secret, prefix: recordings/}
keys: {shared: true}
YAML
	fi
	echo "$f"
}

# start_node N IP STORE: sets node_pid[N], node_http[N], node_sip[N].
declare -A node_pid node_http node_sip node_metrics
start_node() {
	local n=$1 ip=$2 cfg log line i
	cfg=$(node_config "$n" "$3")
	log="$tmp/node$n.log"
	mkdir -p "$tmp/data$n-$3"
	TRACKLINE_MASTER_KEY=$MASTER "$BIN" serve --config "$cfg" --data "$tmp/data$n-$3" --http 127.0.0.1:0 --admin 127.0.0.1:0 \
		--metrics 127.0.0.1:0 --app 127.0.0.1:0 --sip "$ip:0" --log-format json >/dev/null 2>"$log" &
	node_pid[$n]=$!
	pids+=("${node_pid[$n]}")
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 '"msg":"ready"' "$log" || true)
		[ -n "$line" ] && break
		kill -0 "${node_pid[$n]}" 2>/dev/null || { tail -5 "$log" >&2; die "node $n exited (log $log)"; }
		sleep 0.1
	done
	[ -n "$line" ] || die "node $n not ready"
	node_http[$n]=$(jq -r .http <<<"$line")
	node_sip[$n]=$(jq -r .sip <<<"$line")
	node_metrics[$n]=$(jq -r .metrics <<<"$line")
}

stop_nodes() {
	local n
	for n in "${!node_pid[@]}"; do kill -TERM "${node_pid[$n]}" 2>/dev/null || true; done
	for n in "${!node_pid[@]}"; do
		for ((i = 0; i < 100; i++)); do kill -0 "${node_pid[$n]}" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "${node_pid[$n]}" 2>/dev/null || true
	done
	node_pid=() node_http=() node_sip=() node_metrics=()
}

nodes_ticks() { local t=0 n; for n in "${!node_pid[@]}"; do t=$((t + $(ticks "${node_pid[$n]}"))); done; echo "$t"; }

LINE_PORT=$(free_port)
SIPP_DIR=e2e/testdata/sipp
printf '%s\n' "mode nodes phase rate_per_s count node_cpu_s pg_cpu_s load_cpu_s other_cpu_s node_us_per_op pg_us_per_op" >"$tmp/results"

for mode in $MODES; do
	case $mode in
	bbolt) store=bbolt nodes=1 ;;
	pg1) store=postgres nodes=1 ;;
	pg3) store=postgres nodes=3 ;;
	*) die "unknown mode $mode" ;;
	esac
	if [ "$store" = postgres ] && [ -z "$pg_pid" ]; then
		start_pg
		start_weed
		pids+=("$weed_pid")
	fi
	if [ "$store" = postgres ]; then # a fresh database per mode
		port=${DSN#*127.0.0.1:}
		port=${port%%/*}
		"$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qc 'DROP DATABASE IF EXISTS trackline' -c 'CREATE DATABASE trackline' >/dev/null
	fi
	for ((n = 1; n <= nodes; n++)); do start_node "$n" "127.0.0.$((n + 1))" "$store"; done
	say "$mode: $nodes node(s) on $store ready"

	# Sessions.
	per=$((CONNECTIONS / nodes))
	if [ "$PG_STATS" = 1 ] && [ "$store" = postgres ]; then
		"$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d trackline -qAt \
			-c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' -c 'SELECT pg_stat_statements_reset()' >/dev/null
	fi
	pg0=0; [ -n "$pg_pid" ] && [ "$store" = postgres ] && pg0=$(pg_ticks)
	c0=$(nodes_ticks) b0=$(busy)
	TIMEFORMAT='%3U %3S'
	prof_pid=""
	if [ "$PROFILE" = 1 ]; then
		curl -fsS -o "$tmp/cpu-$mode.pprof" "http://${node_metrics[1]}/debug/pprof/profile?seconds=$((DURATION > 3 ? DURATION - 2 : 1))" &
		prof_pid=$!
	fi
	wpids=()
	for ((n = 1; n <= nodes; n++)); do
		{ time wrk -t1 -c"$per" -d"${DURATION}s" --timeout 5s --latency -s scripts/wrk-sessions.lua \
			"http://${node_http[$n]}/v1/sessions" >"$tmp/wrk-$mode-$n.txt"; } 2>"$tmp/wrk-$mode-$n.time" &
		wpids+=($!)
	done
	for p in "${wpids[@]}"; do wait "$p"; done
	c1=$(nodes_ticks) b1=$(busy)
	pg1=0; [ "$store" = postgres ] && pg1=$(pg_ticks)
	if [ -n "$prof_pid" ]; then
		wait "$prof_pid" || true
		{ echo "== $mode: node 1's CPU profile over the session phase"; go tool pprof -top -nodecount=30 "$BIN" "$tmp/cpu-$mode.pprof" 2>/dev/null; } >>"$tmp/profiles"
	fi
	ok=0 wrkcpu=0
	for ((n = 1; n <= nodes; n++)); do
		o=$(grep -m1 '^WRK_RESULT ' "$tmp/wrk-$mode-$n.txt" | tr ' ' '\n' | sed -n 's/^ok=//p')
		ok=$((ok + o))
		wrkcpu=$(awk -v a="$wrkcpu" '{print a + $1 + $2}' "$tmp/wrk-$mode-$n.time" | tail -1)
	done
	awk -v m="$mode" -v n="$nodes" -v ok="$ok" -v d="$DURATION" -v c=$((c1 - c0)) -v p=$((pg1 - pg0)) \
		-v b=$((b1 - b0)) -v w="$wrkcpu" -v hz="$CLK_TCK" 'BEGIN {
		printf "%s %d sessions %.0f %d %.2f %.2f %.2f %.2f %.1f %.1f\n", m, n, ok / d, ok, c / hz, p / hz, w,
			b / hz - c / hz - p / hz - w, c / hz * 1e6 / ok, p / hz * 1e6 / ok }' >>"$tmp/results"
	if [ "$PG_STATS" = 1 ] && [ "$store" = postgres ]; then
		# Per session: microseconds of execution and planning, and calls, of each statement.
		{
			echo "== $mode: pg_stat_statements over the session phase ($ok sessions; µs per session)"
			"$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d trackline -P pager=off -c "
				SELECT round((total_exec_time * 1000 / $ok)::numeric, 1) AS exec_us, round((total_plan_time * 1000 / $ok)::numeric, 1) AS plan_us,
					calls, round((calls::numeric / $ok), 3) AS per_session, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
				FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'trackline')
				ORDER BY total_exec_time + total_plan_time DESC LIMIT 20"
		} >>"$tmp/pgstats"
	fi

	# Calls: a business line, then CALLS calls split over the nodes.
	sipp -sf "$SIPP_DIR/uas-answer.xml" -i 127.0.0.1 -p "$LINE_PORT" -m "$CALLS" -nostdin >/dev/null 2>&1 &
	line_pid=$!
	pids+=("$line_pid")
	sleep 0.5
	pg0=0; [ "$store" = postgres ] && pg0=$(pg_ticks)
	c0=$(nodes_ticks) b0=$(busy)
	spids=()
	start=$(date +%s.%N)
	for ((n = 1; n <= nodes; n++)); do
		{ time sipp -sf "$SIPP_DIR/uac-answer.xml" -i 127.0.0.1 -p "$(free_port)" -s "$FLYER" -m $((CALLS / nodes)) \
			-r $((CALL_RATE / nodes)) -d 1000 -nostdin -timeout 120s -timeout_error "${node_sip[$n]}" \
			>"$tmp/sipp-$mode-$n.txt" 2>&1; echo "exit $?" >>"$tmp/sipp-$mode-$n.txt"; } 2>"$tmp/sipp-$mode-$n.time" &
		spids+=($!)
	done
	for p in "${spids[@]}"; do wait "$p"; done
	end=$(date +%s.%N)
	c1=$(nodes_ticks) b1=$(busy)
	pg1=0; [ "$store" = postgres ] && pg1=$(pg_ticks)
	kill -KILL "$line_pid" 2>/dev/null || true
	wait "$line_pid" 2>/dev/null || true
	ncalls=$(( (CALLS / nodes) * nodes ))
	fails=$(cat "$tmp"/sipp-"$mode"-*.txt | grep -c '^exit [^0]' || true)
	sippcpu=0
	for ((n = 1; n <= nodes; n++)); do
		sippcpu=$(awk -v a="$sippcpu" '{print a + $1 + $2}' "$tmp/sipp-$mode-$n.time" | tail -1)
	done
	awk -v m="$mode" -v n="$nodes" -v calls="$ncalls" -v s="$start" -v e="$end" -v c=$((c1 - c0)) -v p=$((pg1 - pg0)) \
		-v b=$((b1 - b0)) -v w="$sippcpu" -v hz="$CLK_TCK" -v f="$fails" 'BEGIN {
		printf "%s %d calls%s %.1f %d %.2f %.2f %.2f %.2f %.1f %.1f\n", m, n, (f > 0 ? "(sipp-failed)" : ""), calls / (e - s), calls,
			c / hz, p / hz, w, b / hz - c / hz - p / hz - w, c / hz * 1e6 / calls, p / hz * 1e6 / calls }' >>"$tmp/results"
	stop_nodes
done

echo "cores $(nproc), loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg), DURATION=$DURATION CONNECTIONS=$CONNECTIONS CALL_RATE=$CALL_RATE CALLS=$CALLS"
column -t "$tmp/results"
echo "node_cpu_s: all nodes' user+system CPU in the phase; pg_cpu_s: PostgreSQL's (postmaster and backends);"
echo "load_cpu_s: wrk or sipp; other_cpu_s: anything else on the machine meanwhile (other helpers' work, weed)."
echo "calls: rate_per_s is calls placed over the phase's wall time (talk 1 s each); node_us_per_op is CPU per call."
if [ -f "$tmp/pgstats" ]; then cat "$tmp/pgstats"; fi
if [ -f "$tmp/profiles" ]; then cat "$tmp/profiles"; fi
