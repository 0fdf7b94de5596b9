#!/usr/bin/env bash
# SIP load benchmark of the real binary: sipp as the trunk (UAC) and as the business line
# (UAS), both on loopback, through `trackline serve`. A ladder of call rates, then one
# sustained run, then (when OVERLOAD_RATE is set) an overload run. Each run gets a fresh
# switch (its own data directory, so peak RSS is per run) and a fresh business line.
#
# MODE picks what the bench customer's calls cost the switch (signalling-only calls in every
# mode: sipp sends no RTP):
#   direct    no recording, no prompt: SDP passes through untouched (direct media)
#   recorded  recording on, no prompt: media anchored (4 RTP/RTCP sockets a call), a recording
#             opened at the answer and finished (encrypted, synced, renamed, hashed) at the BYE
#   prompt    recording on and the built-in disclaimer (7.1 s) as early media: the caller's 200
#             comes after it, so setup times include it and calls last it longer
#
# In prompt mode the switch sends RTP to the media ports the scenarios announce (the
# disclaimer to the trunk's, frames of silence to the line's), where sipp neither listens nor
# reads. Each of those packets would draw an ICMP port unreachable, which on loopback the
# switch's own send pays for (a fifth of its CPU in __icmp_send, docs/benchmarks.md) and
# which a real trunk's open media port never causes. So each run starts bin/trackline-rtpsink
# on those ports (built from ./cmd/trackline-rtpsink): it reads and discards every datagram,
# with recvmmsg, and its count and CPU time are reported. It reads rather than leaving a full
# socket to drop them, so that the machine's RcvbufErrors (below) still counts only real
# drops; but reading ~180,000 datagrams a second costs the shared cores more than a far peer
# costs the switch, so SINK=drop binds the ports without reading (the kernel drops at the full
# socket: the cheapest a peer on loopback can be; those drops count in RcvbufErrors).
#
# Environment (defaults in brackets):
#   RATES            call rates of the ladder, calls per second ["200 500 1000 1500"]
#   CALLS            calls per ladder step; a step lasts at least 4 s [4000]
#   SUSTAIN_RATE     rate of the sustained run [1500]
#   SUSTAIN_SECONDS  length of the sustained run; 0 skips it [60]
#   CALL_MS          talk time of each call (sipp -d), bounds the concurrency [1000]
#   NUMBERS          pool numbers the trunk dials in turn [1000]
#   BUFF             sipp's socket buffers, -buff_size (capped by net.core.rmem_max) [4194304]
#   KEEP             1: keep the temp dir (config, logs, sipp statistics) [0; kept on failure]
#   MODE             direct | recorded | prompt (above) [direct]
#   RTP_PORTS        media.rtp_ports of the anchored modes [10000-31999]
#   MAX_CPS          sip.max_cps of the switch (its configured INVITE rate cap) [unset: none]
#   OVERLOAD_RATE    offered rate of the overload run, e.g. twice the ladder's knee; 0 skips it [0]
#   OVERLOAD_SECONDS length of the overload run [60]
#   BIN              the switch to run; when set it is not built [bin/trackline, built if stale]
#   WEBHOOK_URL      when set, each run makes one webhook endpoint of the customer with this URL
#                    (on 127.0.0.0/8, which the config allows) right after the switch is ready,
#                    and reports webhook attempts by outcome and the queue depth at its end; a
#                    receiver: `go run ./cmd/trackline-webhookrecv -listen 127.0.0.1:18919
#                    -mode fast` (answers 204) or `-mode hang` (never answers) [unset: none]
#   WEBHOOK_TYPES    the endpoint's event types, a JSON list [every type]
#   GAUGES           1: sample the switch's gauges (calls, media sessions, recordings open,
#                    setups in flight and their limit, the admitted rate limit) and its open
#                    descriptors every second into gauges.txt of the run's directory, and its
#                    goroutines (pprof, by stack) at the fifth second into goroutines-5s.txt;
#                    that dump stalls the switch (at 1,000 recorded CPS 220-305 calls were
#                    refused in that second): leave GAUGES off for the failure figures [0]
#   FS               where the runs' data directories (the store, the recordings) live:
#                    fresh: on an ext4 file system made for this invocation (mkfs.ext4 with
#                    its defaults, a journal included, in a sparse image of FS_GB GiB under the
#                    temp dir, loop-mounted; needs root, mkfs.ext4 and mount), unmounted and
#                    deleted at the end; tmp: in the temp dir [fresh as root with mkfs.ext4,
#                    else tmp; and tmp when that fresh one cannot be made or mounted]
#   FS_GB            size of the fresh file system's image, sparse [16]
#   SINK             1: bind the announced media ports with the sink (above), which reads;
#                    drop: bind them without reading; 0: leave them unbound, as before this
#                    was added [1 in prompt mode, else 0]
#   PTIME            when set, the trunk's offers ask for this packetization (a=ptime, ms): the
#                    switch's own frames (the disclaimer, the tone) then have it [unset: 20 ms]
#   BUSY             ON/OFF: a thread busy for ON and asleep for OFF, over and over, from each
#                    run's ready switch to its end (bin/trackline-busy, built from
#                    ./cmd/trackline-busy), as another tenant of a shared machine: 10ms/10ms
#                    keeps half a core busy. Its CPU share is printed under the table [none]
#
# Why a fresh file system: a recorded run leaves tens of thousands of recordings, which the
# end of the run deletes. On a file system without a journal (the reference machine's root is
# ext4 without one), ext4's inode allocator then skips every inode deleted in the last minute
# (up to six while its inode table block is dirty) when it creates a file: creating a file
# cost 139-585 us instead of 19 us for minutes after 60,000 were deleted (docs/benchmarks.md),
# so each run paid for the one before it, and an A/B run (make bench-sip) for the other
# build's. A fresh file system per invocation has no such history; within one invocation no
# run deletes anything.
#
# The overload run's trunk (e2e/testdata/sipp/uac-answer-or-503.xml) takes a 503 with
# Retry-After as a refused call; it reports goodput (answered calls a second while the load
# was offered), the 503s, the setup p99 of admitted calls, the time to a 503 (p50, p99, max),
# and the switch's socket receive queue, sampled every 0.1 s (p99 and max, in KiB of the
# kernel's accounting), and the bucket of the store commits' p99 (a durable write is on each
# call's setup path: fsync on a busy disk shows here, not in the switch's queue).
#
# Per run it reports: calls, failed calls as sipp counts them (any call whose scenario did
# not run as written), calls the switch recorded as not answered (trackline_calls_total from
# /metrics), setup time p50/p99 (INVITE to 200 at the trunk, sipp -trace_rtt, 1 ms
# resolution), switch CPU per call (utime+stime delta of /proc/PID/stat over the calls), the
# p95 and max of the switch's CPU per one-second sample, peak RSS (VmHWM), receive drops on
# the switch's UDP socket (/proc/net/udp) and on sipp's, and the machine's UDP RcvbufErrors
# delta (/proc/net/snmp). The switch and both sipps share the machine's cores (2 on the
# reference machine). Exits non-zero when the switch dies or a run cannot start; failed calls
# are figures, not a failure of the script.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sipp.sh

RATES=${RATES:-"200 500 1000 1500"}
CALLS=${CALLS:-4000}
SUSTAIN_RATE=${SUSTAIN_RATE:-1500}
SUSTAIN_SECONDS=${SUSTAIN_SECONDS:-60}
CALL_MS=${CALL_MS:-1000}
NUMBERS=${NUMBERS:-1000}
BUFF=${BUFF:-4194304}
KEEP=${KEEP:-0}
WEBHOOK_URL=${WEBHOOK_URL:-}
MODE=${MODE:-direct}
RTP_PORTS=${RTP_PORTS:-10000-31999}
MAX_CPS=${MAX_CPS:-}
OVERLOAD_RATE=${OVERLOAD_RATE:-0}
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-60}
case $MODE in direct | recorded | prompt) ;; *) echo "bench-sip: MODE=$MODE: want direct, recorded or prompt" >&2; exit 2 ;; esac
PROMPT_S=0 # how much longer the caller waits for the bridge: the disclaimer
[ "$MODE" = prompt ] && PROMPT_S=8
GAUGES=${GAUGES:-0}
SINK=${SINK:-$([ "$MODE" = prompt ] && echo 1 || echo 0)}
BUSY=${BUSY:-}
PTIME=${PTIME:-}
[ -z "$PTIME" ] || [[ $PTIME =~ ^[1-9][0-9]*$ ]] || { echo "bench-sip: PTIME=$PTIME: want milliseconds, e.g. 40" >&2; exit 2; }
FS_GB=${FS_GB:-16}
FS_SET=${FS:+1}
if [ -z "${FS:-}" ]; then
	FS=tmp
	[ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null 2>&1 && command -v mount >/dev/null 2>&1 && FS=fresh
fi
case $FS in fresh | tmp) ;; *) echo "bench-sip: FS=$FS: want fresh or tmp" >&2; exit 2 ;; esac
WEBHOOK_TYPES=${WEBHOOK_TYPES:-'["call.ringing","call.answered","call.completed","recording.ready","call.updated","number.pool_exhausted"]'}

BIN_SET=${BIN:+1}
BIN=${BIN:-bin/trackline}
TOKEN=bench-admin-token-0001
FIRST=31850100000 # the pool: +31850100000 ... (NUMBERS of them)
CLK_TCK=$(getconf CLK_TCK)

say() { printf 'bench-sip: %s\n' "$*"; }
die() { printf 'bench-sip: FAIL: %s\n' "$*" >&2; exit 1; }

for cmd in sipp curl jq go awk; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (run scripts/deps.sh)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench-sip.XXXXXX")
server_pid="" line_pid="" sampler_pid="" rxq_pid="" sink_pid="" fds_pid="" gauges_pid="" busy_pid=""
ok_exit=0 mounted=0
data=$tmp # the runs' data directories go under it
cleanup() {
	local rc=$?
	[ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
	[ -n "$rxq_pid" ] && kill "$rxq_pid" 2>/dev/null
	[ -n "$fds_pid" ] && kill "$fds_pid" 2>/dev/null
	[ -n "$gauges_pid" ] && kill "$gauges_pid" 2>/dev/null
	stop_pid "$line_pid" 2
	stop_pid "$sink_pid" 2
	stop_pid "$busy_pid" 2
	stop_pid "$server_pid" 5
	if [ "$mounted" = 1 ]; then # the loop device goes with the mount (autoclear)
		umount "$data" || say "could not unmount $data"
	fi
	if [ "$rc" -eq 0 ] && [ "$ok_exit" -eq 1 ] && [ "$KEEP" != 1 ]; then
		rm -rf "$tmp"
	else
		say "kept $tmp (config, switch logs, sipp statistics and errors$([ "$mounted" = 1 ] && echo '; the data in fs.img'))"
	fi
}
trap cleanup EXIT

if [ "$FS" = fresh ]; then
	mkdir "$tmp/fs"
	truncate -s "${FS_GB}G" "$tmp/fs.img"
	# Inode tables and journal written now, not by a kernel thread during the first runs.
	if mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$tmp/fs.img" &&
		mount -o loop "$tmp/fs.img" "$tmp/fs"; then
		mounted=1 data=$tmp/fs
		say "data on a fresh ext4 file system ($FS_GB GiB image, loop-mounted at $data)"
	else
		[ -z "$FS_SET" ] || die "could not make or mount a file system in $tmp/fs.img (FS=tmp puts the data in the temp dir)"
		rm -f "$tmp/fs.img"
		say "no fresh file system here (mkfs.ext4 or a loop mount failed): the data in $tmp, as FS=tmp"
	fi
fi

[ -n "$BIN_SET" ] || build_switch "$BIN"
[ -x "$BIN" ] || die "no switch at $BIN"

# The trunk dials the pool numbers in turn (an injection file) from the caller +31612345678.
{
	echo SEQUENTIAL
	for ((i = 0; i < NUMBERS; i++)); do echo "+$((FIRST + i));"; done
} >"$tmp/numbers.csv"
scenarios=$PWD/$SIPP_SCENARIOS
sed 's/\[service\]/[field0]/g' "$scenarios/uac-answer.xml" >"$tmp/uac.xml"
sed 's/\[service\]/[field0]/g' "$scenarios/uac-answer-or-503.xml" >"$tmp/uac-503.xml"
if [ -n "$PTIME" ]; then # the offers' a=ptime, before their direction
	sed -i "s/^\( *\)a=sendrecv\$/\1a=ptime:$PTIME\n&/" "$tmp/uac.xml" "$tmp/uac-503.xml"
	grep -q "a=ptime:$PTIME" "$tmp/uac.xml" || die "PTIME: no a=sendrecv line in the trunk's offer to put a=ptime before"
fi

# The media ports the trunk's and the line's SDP announce, for the sink (SINK=1).
SINK_BIN=bin/trackline-rtpsink
sink_listen=""
case $SINK in 0 | 1 | drop) ;; *) die "SINK=$SINK: want 0, 1 or drop" ;; esac
if [ "$SINK" != 0 ]; then
	go build -o "$SINK_BIN" ./cmd/trackline-rtpsink || die "could not build $SINK_BIN"
	for f in "$tmp/uac.xml" "$tmp/uac-503.xml" "$scenarios/uas-answer.xml"; do
		for p in $(sed -n 's/.*m=audio \([0-9][0-9]*\) .*/\1/p' "$f"); do
			case ",$sink_listen," in *",127.0.0.1:$p,"*) ;; *) sink_listen="${sink_listen:+$sink_listen,}127.0.0.1:$p" ;; esac
		done
	done
	[ -n "$sink_listen" ] || die "SINK=1: no m=audio port in the scenarios"
fi

# Another tenant's busy thread (BUSY=ON/OFF).
BUSY_BIN=bin/trackline-busy
if [ -n "$BUSY" ]; then
	[[ $BUSY =~ ^[0-9.]+(us|ms|s)/[0-9.]+(us|ms|s)$ ]] || die "BUSY=$BUSY: want ON/OFF durations, e.g. 10ms/10ms"
	go build -o "$BUSY_BIN" ./cmd/trackline-busy || die "could not build $BUSY_BIN"
fi

# The customer's media: what MODE asks for.
media_yaml="" customer_yaml=""
case $MODE in
recorded) customer_yaml="    recording: {enabled: true}" ;;
prompt) customer_yaml=$'    recording: {enabled: true}\n    prompts: {disclaimer: default}' ;;
esac
[ "$MODE" != direct ] && media_yaml=$'media:\n  rtp_ports: '"$RTP_PORTS"
max_cps_yaml=""
[ -n "$MAX_CPS" ] && max_cps_yaml="  max_cps: $MAX_CPS"

# write_config LINE_PORT
write_config() {
	cat >"$tmp/config.yaml" <<YAML
country_code: "31"
listen:
  http: 127.0.0.1:0
  admin: 127.0.0.1:0
  metrics: 127.0.0.1:0
admin_token: $TOKEN
sip:
  listen: 127.0.0.1:0
  trunks:
    - name: bench
      sources: ["127.0.0.1/32"]
  ring_timeout: 10s
  drain_timeout: 2s
$max_cps_yaml
$media_yaml
webhooks: {allow_cidrs: ["127.0.0.0/8"]}
customers:
  - id: bench
    name: Bench BV
    status: active
    site_key: bench-site-key-0001
    allowed_origins: ["http://127.0.0.1"]
    business_lines: ["sip:+31852087972@127.0.0.1:$1"]
    display_numbers: ["+31852087972"]
    pool_range: {first: "+$FIRST", count: $NUMBERS}
$customer_yaml
YAML
}

# start_server LOG: starts the switch, waits (at most 30 s) for the ready line and sets
# server_pid, sip_addr, admin_addr and metrics_addr.
start_server() {
	local log=$1 line="" i
	: >"$log"
	"$BIN" serve --config "$tmp/config.yaml" --data "$data/data-$run" --log-format json \
		>/dev/null 2>"$log" &
	server_pid=$!
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 '"msg":"ready"' "$log" || true)
		[ -n "$line" ] && break
		kill -0 "$server_pid" 2>/dev/null || { tail -20 "$log" >&2; die "switch exited before ready (log: $log)"; }
		sleep 0.1
	done
	[ -n "$line" ] || { tail -20 "$log" >&2; die "no ready line within 30 s (log: $log)"; }
	sip_addr=$(jq -r '.sip // empty' <<<"$line")
	admin_addr=$(jq -r '.admin' <<<"$line")
	metrics_addr=$(jq -r '.metrics' <<<"$line")
	[ -n "$sip_addr" ] || die "the ready line has no sip address: $line"
}

# metric NAME_AND_LABELS: a value from the switch's /metrics, or n/a.
metric_sum() {
	curl -fsS --max-time 5 "http://$metrics_addr/metrics" 2>/dev/null |
		awk -v m="$1" -v not="${2:-}" 'index($1, m) == 1 && (not == "" || index($1, not) == 0) {s += $2; found = 1} END {print found ? s : "n/a"}'
}

results=() overloads=()
run=0

# bench NAME RATE CALLS [overload]
bench() {
	local name=$1 rate=$2 calls=$3 kind=${4:-}
	local scenario="$tmp/uac.xml"
	local rtt_freq=1000 # sipp writes its RTDs in batches of this many: every run's calls are a multiple
	if [ "$kind" = overload ]; then
		scenario="$tmp/uac-503.xml"
		rtt_freq=1 # refused and answered calls make RTDs in any proportion
	fi
	run=$((run + 1))
	local dir="$tmp/run-$run-$name"
	mkdir -p "$dir"

	local line_port uac_port
	line_port=$(free_udp_port) || die "no free UDP port"
	write_config "$line_port"
	start_server "$dir/switch.log"
	local pid=$server_pid sip_port=${sip_addr##*:}
	if [ -n "$WEBHOOK_URL" ]; then
		curl -fsS --max-time 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
			-d "{\"url\": \"$WEBHOOK_URL\", \"event_types\": $WEBHOOK_TYPES}" \
			"http://$admin_addr/v1/customers/bench/webhooks" >"$dir/webhook.json" || die "could not make the webhook endpoint"
	fi

	# The business line: answers every call, until stopped.
	# sipp writes some files into its working directory: run it in the run's directory.
	(cd "$dir" && exec sipp -sf "$scenarios/uas-answer.xml" -i 127.0.0.1 -p "$line_port" -nostdin -aa -buff_size "$BUFF" \
		-trace_stat -stf "$dir/line-stat.csv" -fd 1 -trace_err -error_file "$dir/line-errors.log" \
		-timeout 3600s >/dev/null 2>"$dir/line.stderr") &
	line_pid=$!
	wait_udp_bound "$line_pid" "$line_port" || { cat "$dir/line.stderr" >&2; die "the business line could not listen on $line_port"; }
	if [ "$SINK" != 0 ]; then
		"$SINK_BIN" -listen "$sink_listen" -read="$([ "$SINK" = 1 ] && echo true || echo false)" >"$dir/sink.txt" 2>"$dir/sink.stderr" &
		sink_pid=$!
		wait_udp_bound "$sink_pid" "${sink_listen##*:}" || { cat "$dir/sink.stderr" >&2; die "the media sink could not bind $sink_listen"; }
	fi

	uac_port=$(free_udp_port) || die "no free UDP port"
	local secs=$(((calls + rate - 1) / rate))
	local limit=$((rate * (CALL_MS / 1000 + 5 + PROMPT_S))) # concurrent calls at most (sipp -l)
	local timeout=$((secs + CALL_MS / 1000 + PROMPT_S + 60))
	say "run $run ($name): $calls calls at $rate CPS (~${secs} s), ${CALL_MS} ms each; switch pid $pid sip $sip_addr, line :$line_port"
	if [ -n "$BUSY" ]; then # stopped after sipp; -for bounds it if this script is killed
		"$BUSY_BIN" -on "${BUSY%/*}" -off "${BUSY#*/}" -for "$((timeout + 60))s" >"$dir/busy.txt" 2>&1 &
		busy_pid=$!
	fi

	local cpu0 snmp0 cpu1 snmp1 hwm drops_sw drops_uac drops_line rc=0
	cpu0=$(cpu_ticks "$pid")
	snmp0=$(udp_rcvbuf_errors)
	sample_cpu "$pid" "$dir/cpu.txt" $((timeout + 10)) &
	sampler_pid=$!
	sample_rxq "$sip_port" "$dir/rxq.txt" $((timeout + 10)) &
	rxq_pid=$!
	if [ "$SINK" != 0 ]; then # the switch's open descriptors, every second
		(for ((i = 0; i < timeout + 10; i++)); do ls "/proc/$pid/fd" 2>/dev/null | wc -l; sleep 1; done >"$dir/fds.txt") &
		fds_pid=$!
	fi
	if [ "$GAUGES" = 1 ]; then # the switch's gauges and descriptors, every second
		(for ((i = 0; i < timeout + 10; i++)); do
			printf '%s fds=%s ' "$i" "$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)"
			curl -fsS --max-time 1 "http://$metrics_addr/metrics" 2>/dev/null | awk '
				/^trackline_(calls_active|media_sessions_active|recordings_active|sip_setups_in_flight|sip_setup_limit|sip_admit_limit_cps|sip_sched_delay_seconds|sip_queue_delay_seconds) / {n = $1; sub(/^trackline_/, "", n); printf "%s=%s ", n, $2}
				/^trackline_sip_shed_total\{/ {r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "shed_%s=%s ", r, $2}
				END {print ""}'
			[ "$i" = 5 ] && curl -fsS --max-time 5 "http://$metrics_addr/debug/pprof/goroutine?debug=1" >"$dir/goroutines-5s.txt" 2>/dev/null
			sleep 1
		done >"$dir/gauges.txt") &
		gauges_pid=$!
	fi
	(cd "$dir" && exec sipp -sf "$scenario" -inf "$tmp/numbers.csv" -i 127.0.0.1 -p "$uac_port" \
		-r "$rate" -rp 1000 -m "$calls" -l "$limit" -d "$CALL_MS" \
		-nostdin -aa -buff_size "$BUFF" \
		-trace_stat -stf "$dir/trunk-stat.csv" -fd 1 -trace_rtt -rtt_freq "$rtt_freq" \
		-trace_err -error_file "$dir/trunk-errors.log" \
		-timeout "${timeout}s" -timeout_error "$sip_addr" >/dev/null 2>"$dir/trunk.stderr") || rc=$?
	# The sockets' drop counters, before the sockets go.
	drops_sw=$(udp_drops "$sip_port")
	drops_uac=$(udp_drops "$uac_port")
	drops_line=$(udp_drops "$line_port")
	kill "$sampler_pid" "$rxq_pid" $fds_pid $gauges_pid 2>/dev/null || true
	wait "$sampler_pid" "$rxq_pid" $fds_pid $gauges_pid 2>/dev/null || true
	sampler_pid="" rxq_pid="" fds_pid="" gauges_pid=""
	kill -0 "$pid" 2>/dev/null || die "the switch died during run $run (log: $dir/switch.log)"
	sleep 1 # the last records and metrics
	cpu1=$(cpu_ticks "$pid")
	snmp1=$(udp_rcvbuf_errors)
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
	local answered total
	answered=$(metric_sum 'trackline_calls_total{disposition="answered"}')
	total=$(metric_sum 'trackline_calls_total{')
	curl -fsS --max-time 5 "http://$metrics_addr/metrics" >"$dir/metrics-end.txt" 2>/dev/null || true
	local shed
	shed=$(awk '/^trackline_sip_shed_total\{/ && $2 > 0 {r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "%s%s %d", sep, r, $2; sep = ", "} END {if (!sep) printf "none"}' "$dir/metrics-end.txt")
	local webhooks=""
	if [ -n "$WEBHOOK_URL" ]; then
		curl -fsS --max-time 5 "http://$metrics_addr/metrics" >"$dir/metrics.txt" 2>/dev/null || true
		webhooks=$(awk '/^trackline_webhook_attempts_total\{/ && $2 > 0 {sub(/.*outcome="/, "", $1); sub(/".*/, "", $1); printf "%s%s %d", sep, $1, $2; sep = ", "}
			/^trackline_webhook_queue_depth / {d = $2} END {printf "; queue depth %s", d == "" ? "n/a" : d}' "$dir/metrics.txt")
	fi
	local busied=""
	if [ -n "$busy_pid" ]; then
		stop_pid "$busy_pid" 3
		wait "$busy_pid" 2>/dev/null || true
		busy_pid=""
		busied=$(head -1 "$dir/busy.txt")
	fi
	local warns
	warns=$(grep -c '"level":"\(WARN\|ERROR\)"' "$dir/switch.log" || true)
	stop_pid "$line_pid" 3
	line_pid=""
	local sunk=""
	if [ -n "$sink_pid" ]; then
		local sdrops=0 sp scpu
		for sp in ${sink_listen//,/ }; do sdrops=$((sdrops + $(udp_drops "${sp##*:}"))); done
		scpu=$(cpu_ticks "$sink_pid" || echo 0)
		stop_pid "$sink_pid" 3
		wait "$sink_pid" 2>/dev/null || true
		sink_pid=""
		sunk=$(awk '{n += $3; b += $5} END {printf "%d datagrams, %.0f MB", n, b / 1e6}' "$dir/sink.txt")
		sunk="$sunk read, $sdrops dropped at its sockets (in RcvbufErrors), $(awk -v t="$scpu" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", t / hz}') s of CPU; the switch's descriptors: peak $(sort -g "$dir/fds.txt" | tail -1), limit $(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")"
	fi
	stop_pid "$server_pid" 10
	server_pid=""

	local stat="$dir/trunk-stat.csv"
	[ -s "$stat" ] || { cat "$dir/trunk.stderr" >&2; die "sipp wrote no statistics (run $run, exit $rc)"; }
	local created ok failed retrans
	created=$(stat_field "$stat" 'TotalCallCreated')
	ok=$(stat_field "$stat" 'SuccessfulCall(C)')
	failed=$(stat_field "$stat" 'FailedCall(C)')
	retrans=$(stat_field "$stat" 'Retransmissions(C)')
	# The rate the trunk made: answered calls over the time from the first answer to the last
	# (sipp's own CallRate also counts the last call's talk time).
	local made=n/a
	local rtt
	rtt=$(ls "$dir"/uac*_rtt.csv 2>/dev/null | head -1 || true)
	local p50=n/a p99=n/a
	local refused=0 r50=n/a r99=n/a rmax=n/a
	if [ -n "$rtt" ]; then
		awk -F';' 'NR > 1 && $3 == "setup" {print $2}' "$rtt" >"$dir/setup-ms.txt"
		awk -F';' 'NR > 1 && $3 == "refused" {print $2}' "$rtt" >"$dir/refused-ms.txt"
		made=$(awk -F';' 'NR > 1 && $3 == "setup" {if (!n++) a = $1; b = $1} END {print (n > 1 && b > a) ? sprintf("%.0f", (n - 1) * 1000 / (b - a)) : "n/a"}' "$rtt")
		p50=$(percentile "$dir/setup-ms.txt" 50)
		p99=$(percentile "$dir/setup-ms.txt" 99)
		refused=$(wc -l <"$dir/refused-ms.txt")
		r50=$(percentile "$dir/refused-ms.txt" 50)
		r99=$(percentile "$dir/refused-ms.txt" 99)
		rmax=$(sort -g "$dir/refused-ms.txt" | tail -1)
	fi
	local cpu_p95 cpu_max
	cpu_p95=$(percentile "$dir/cpu.txt" 95)
	cpu_max=$(sort -g "$dir/cpu.txt" | tail -1)
	local not_answered=n/a
	[ "$answered" != n/a ] && [ "$total" != n/a ] && not_answered=$((total - answered))

	local row
	row=$(awk -v name="$name" -v rate="$rate" -v made="$made" -v created="$created" -v ok="$ok" -v failed="$failed" \
		-v retrans="$retrans" -v recorded="$total" -v notans="$not_answered" -v p50="$p50" -v p99="$p99" \
		-v ticks=$((cpu1 - cpu0)) -v hz="$CLK_TCK" \
		-v p95="$cpu_p95" -v cmax="${cpu_max:-n/a}" -v hwm="$hwm" -v dsw="$drops_sw" -v duac="$drops_uac" \
		-v dline="$drops_line" -v rcv=$((snmp1 - snmp0)) -v rc="$rc" -v warns="$warns" 'BEGIN {
			ms = created ? ticks / hz * 1000 / created : 0
			fpct = created ? 100 * failed / created : 0
			printf "| %s | %d | %s | %d | %d (%.3f %%) | %s | %s | %s | %s | %s | %.3f | %s / %s | %.0f | %d / %d / %d | %d | %d | %d |\n",
				name, rate, made, created, failed, fpct, notans, recorded, retrans, p50, p99, ms, p95, cmax,
				hwm / 1024, dsw, duac, dline, rcv, warns, rc
		}')
	results+=("$row")
	say "run $run done: $row"
	say "run $run shed by reason (switch): $shed"
	if [ "$kind" = overload ]; then
		# Goodput: answered calls a second while the load was offered (sipp's -m calls at -r).
		local admitted rxq99 rxqmax
		admitted=$(wc -l <"$dir/setup-ms.txt")
		rxq99=$(percentile "$dir/rxq.txt" 99)
		rxqmax=$(sort -g "$dir/rxq.txt" | tail -1)
		local commit99
		commit99=$(hist_quantile "$dir/metrics-end.txt" trackline_store_commit_seconds 0.99)
		row=$(awk -v name="$name" -v rate="$rate" -v created="$created" -v secs="$secs" -v adm="$admitted" -v made="$made" \
			-v failed="$failed" -v p99="$p99" -v ref="$refused" -v r50="$r50" -v r99="$r99" -v rmax="${rmax:-n/a}" -v shed="$shed" \
			-v retrans="$retrans" -v ticks=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v hwm="$hwm" -v dsw="$drops_sw" \
			-v rxq99="${rxq99:-0}" -v rxqmax="${rxqmax:-0}" -v commit99="$commit99" 'BEGIN {
				ms = adm ? ticks / hz * 1000 / adm : 0
				printf "| %s | %d | %d | %d (%.0f / s) | %s | %d | %d (%.1f %%) | %s / %s / %s | %s | %d | %s | %.3f | %.0f | %d | %.0f / %.0f | %s |\n",
					name, rate, created, adm, adm / secs, made, failed, ref, created ? 100 * ref / created : 0, r50, r99, rmax, shed, retrans, p99, ms, hwm / 1024,
					dsw, rxq99 / 1024, rxqmax / 1024, commit99
			}')
		overloads+=("$row")
		say "run $run overload: $row"
	fi
	[ -z "$webhooks" ] || { results+=("|  webhooks at the end: ${webhooks#, } |"); say "run $run webhooks: ${webhooks#, }"; }
	[ -z "$sunk" ] || { results+=("|  media sink ($sink_listen): $sunk |"); say "run $run media sink: $sunk"; }
	[ -z "$busied" ] || { results+=("|  busy thread ($BUSY): $busied |"); say "run $run busy thread: $busied"; }
}

for rate in $RATES; do
	calls=$CALLS
	[ $((rate * 4)) -gt "$calls" ] && calls=$((rate * 4))
	bench "ladder" "$rate" "$calls"
done
if [ "$SUSTAIN_SECONDS" -gt 0 ]; then
	bench "sustained ${SUSTAIN_SECONDS}s" "$SUSTAIN_RATE" $((SUSTAIN_RATE * SUSTAIN_SECONDS))
fi
if [ "$OVERLOAD_RATE" -gt 0 ]; then
	bench "overload ${OVERLOAD_SECONDS}s" "$OVERLOAD_RATE" $((OVERLOAD_RATE * OVERLOAD_SECONDS)) overload
fi

echo
echo "SIP: $(nproc) cores shared by the switch and both sipps; MODE=$MODE; calls of ${CALL_MS} ms;${PTIME:+ the trunk asks a=ptime:$PTIME;}${MAX_CPS:+ max_cps $MAX_CPS;}${BUSY:+ a busy thread $BUSY;} $(git describe --always --dirty 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | CPS asked | CPS made | calls | failed (sipp) | not answered (switch) | recorded | retrans | setup p50 ms | setup p99 ms | CPU ms/call | CPU % p95 / max | peak RSS MiB | UDP drops switch / trunk / line | RcvbufErrors Δ | warn+error logs | sipp exit |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${results[@]}"
if [ "${#overloads[@]}" -gt 0 ]; then
	echo
	echo "Overload (refused = 503 with Retry-After at the trunk; in the table above they count as sipp's successful calls):"
	echo
	echo "| run | CPS offered | calls | admitted (goodput) | CPS made | failed (sipp) | refused 503 | to 503 ms p50 / p99 / max | shed by reason (switch) | retrans | setup p99 ms of admitted | CPU ms per admitted call | peak RSS MiB | UDP drops switch | socket queue KiB p99 / max | store commit p99 s (bucket) |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${overloads[@]}"
fi
ok_exit=1
