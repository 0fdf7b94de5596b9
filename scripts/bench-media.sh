#!/usr/bin/env bash
# Media load benchmark of the real binary: N concurrent anchored and recorded calls through
# `trackline serve`, SIP included. bin/trackline-mediaload is both the trunk (it places the
# calls) and the business line (it answers them), on loopback; each call carries 50 packets/s
# of PCMU in each direction, stamped with its send time, for DURATION seconds once all calls
# are up (see cmd/trackline-mediaload/doc.go). Each run gets a fresh switch with its own
# data directory.
#
# Environment (defaults in brackets):
#   CALLS       concurrent calls, one run (or RUNS runs) each ["200 500 1000"]
#   RUNS        runs per N; the summary gives the median of each figure [1]
#   DURATION    the steady window in seconds: media time once every call is up [30]
#   SETUP_RATE  calls per second while ramping up, and BYEs per second after [100]
#   NUMBERS     pool numbers the trunk dials in turn, from +31850000001 [20]
#   MEDIA       1: the switch anchors and records the media (config keys media, recordings
#               and the customer's recording); 0: none of them, the SDP passes through and
#               RTP flows straight between the generator's two sides (a check of the
#               generator itself) [1]
#   LOOPS       the generator's media loops (OS threads) [1]
#   KEEP        1: keep the temp dir (configs, logs, reports) [0; kept on failure]
#   TICK        the generator's pacing step within each 20 ms slot: all packets of a step leave
#               together (-tick; 100us spreads them closer to independent phones) [1ms]
#   BATCH_WAIT  the switch's media.batch_wait (e.g. 4ms, or -1s for none) [its default]
#   RT_PRIO     the switch's media.realtime_priority (e.g. -1 for none) [its default; it takes
#               effect when the script runs as root or with RLIMIT_RTPRIO, see the switch log]
#   IO          the switch's media.io (auto, epoll or io_uring) [its default, auto]
#   SWITCH_LOOPS the switch's media.loops, its packet loops [its default: one per core]
#   KERNEL      the switch's media.kernel (off, auto or on): bridged calls forwarded by its
#               eBPF program; the switch's CPU then adds the program's run time
#               (trackline_media_kernel_cpu_seconds_total) to its process's [its default]
#   GEN_RT_PRIO the generator's media loops' SCHED_FIFO priority, below the switch's (10): on
#               cores the switch's real-time loops share with it, an ordinary thread falls
#               behind by seconds and then sends in bursts no phone would; 0 for none [5]
#   BIN         a prebuilt trackline binary to measure instead of bin/trackline, which is
#               built when stale (for A/B runs of two builds)
#   BASELINE    1: after each run of the switch, the same run on scripts/bare-relay.c, a bare
#               C epoll recv/send relay with no SIP, parsing or recording (needs cc); the
#               summary adds its CPU per call and the switch's ratio to it, the median of the
#               runs' ratios. Each pair of runs is back to back, so the machine's drift over
#               minutes touches both alike [0]
#
# Per run, over the steady window only (the generator samples the switch at its two ends):
# packet loss (per call and direction, from the payload's sequence stamps), the switch's CPU
# per call (utime+stime of /proc/PID/stat, % of one core), the latency the switch adds
# (kernel receive time minus send time at the generator; p50/p99/p99.9), allocations per
# relayed packet (go_memstats_mallocs_total over trackline_rtp_relayed_packets_total from
# /metrics, less what one scrape of /metrics allocates: the bench's own), the CPU other
# processes took, and the CPU the hypervisor took from this machine's CPUs (steal in
# /proc/stat, where the kernel accounts it). After the calls and the switch have ended: disk
# bytes per call-second (du -sb of the recordings directory over the answered calls' total
# duration). The switch and the generator share the machine's cores (2 on the reference
# machine); the generator's own CPU is printed too, and at the end what one loopback send +
# recv costs this machine (scripts/loopback-floor.c). Exits non-zero when the
# switch dies, cannot start, or a run produced no report; loss and failed calls are
# figures, not failures of the script.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sipp.sh # free_udp_port, stop_pid, udp_rcvbuf_errors, build_switch, tsv_median (sipp itself is not needed)

CALLS=${CALLS:-"200 500 1000"}
RUNS=${RUNS:-1}
DURATION=${DURATION:-30}
SETUP_RATE=${SETUP_RATE:-100}
NUMBERS=${NUMBERS:-20}
MEDIA=${MEDIA:-1}
LOOPS=${LOOPS:-1}
GEN_RT_PRIO=${GEN_RT_PRIO:-5}
KEEP=${KEEP:-0}
TICK=${TICK:-1ms}
BASELINE=${BASELINE:-0}
RELAY_FIRST=10000 # the bare relay's ports: FIRST .. FIRST+4N, below the ephemeral range

BIN=${BIN:-}
GEN=bin/trackline-mediaload
FIRST=+31850000001

say() { printf 'bench-media: %s\n' "$*"; }
die() { printf 'bench-media: FAIL: %s\n' "$*" >&2; exit 1; }

for cmd in go jq awk du; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (run scripts/deps.sh)"
done

# Two RTP sockets per call on each side, recording files, SIP: raise the soft limit to the
# hard one for the switch and the generator (both inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for n in $CALLS; do
	if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n * 8 + 1024)) ]; then
		say "warning: ulimit -n is $(ulimit -n), which may be too few for $n calls"
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench-media.XXXXXX")
server_pid=""
relay_pid=""
ok_exit=0
cleanup() {
	local rc=$?
	stop_pid "$server_pid" 5
	stop_pid "$relay_pid" 5
	if [ "$rc" -eq 0 ] && [ "$ok_exit" -eq 1 ] && [ "$KEEP" != 1 ]; then
		rm -rf "$tmp"
	else
		say "kept $tmp (configs, switch and generator logs, reports)"
	fi
}
trap cleanup EXIT

if [ -z "$BIN" ]; then
	BIN=bin/trackline
	build_switch "$BIN"
fi
[ -x "$BIN" ] || die "$BIN is not an executable"
go build -o "$GEN" ./cmd/trackline-mediaload
RELAY=bin/bare-relay
if [ "$BASELINE" = 1 ]; then
	command -v cc >/dev/null 2>&1 || die "BASELINE=1 needs a C compiler (apt-get install gcc)"
	cc -O2 -Wall -o "$RELAY" scripts/bare-relay.c
fi

# write_config DIR LINE_PORT
write_config() {
	local dir=$1 line_port=$2 media="" recording=""
	if [ "$MEDIA" = 1 ]; then
		media="media:
  rtp_ports: 20000-29999${BATCH_WAIT:+
  batch_wait: $BATCH_WAIT}${RT_PRIO:+
  realtime_priority: $RT_PRIO}${IO:+
  io: $IO}${SWITCH_LOOPS:+
  loops: $SWITCH_LOOPS}${KERNEL:+
  kernel: $KERNEL}
recordings:
  dir: $dir/recordings"
		recording="    recording: {enabled: true}"
	fi
	cat >"$dir/config.yaml" <<YAML
data_dir: $dir/data
country_code: "31"
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0, metrics: 127.0.0.1:0}
admin_token: bench-admin-token-0123456789
sip:
  listen: 127.0.0.1:0
  trunks: [{name: loopback, sources: ["127.0.0.0/8"]}]
  max_call_duration: 4h
$media
customers:
  - id: bench
    name: Bench
    status: active
    site_key: bench-site-key-000001
    business_lines: ["sip:bench@127.0.0.1:$line_port"]
    display_numbers: ["+31852087972"]
    pool_range: {first: "$FIRST", count: $NUMBERS}
$recording
YAML
}

# start_server DIR: starts the switch, waits (at most 30 s) for its ready line and sets
# server_pid, sip_addr and metrics_addr.
start_server() {
	local dir=$1 log=$1/switch.log line="" i
	: >"$log"
	"$BIN" serve --config "$dir/config.yaml" --data "$dir/data" --log-format json >/dev/null 2>"$log" &
	server_pid=$!
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 '"msg":"ready"' "$log" || true)
		[ -n "$line" ] && break
		kill -0 "$server_pid" 2>/dev/null || { tail -20 "$log" >&2; die "switch exited before ready (log: $log)"; }
		sleep 0.1
	done
	[ -n "$line" ] || { tail -20 "$log" >&2; die "no ready line within 30 s (log: $log)"; }
	sip_addr=$(jq -r '.sip // empty' <<<"$line")
	metrics_addr=$(jq -r '.metrics // empty' <<<"$line")
	[ -n "$sip_addr" ] && [ -n "$metrics_addr" ] || die "the ready line lacks the sip or metrics address: $line"
}

# A UDP port for the business line outside the switch's RTP range.
line_port() {
	local p i
	for ((i = 0; i < 50; i++)); do
		p=$(free_udp_port) || return 1
		[ "$p" -ge 30000 ] && { echo "$p"; return 0; }
	done
	return 1
}

results="$tmp/results.tsv" # N run loss% sw%/call p50 p99 p999 B/call-s allocs/pkt gen%/call up failed other%
: >"$results"
baseline="$tmp/baseline.tsv" # N run loss% relay%/call p50 p99 p999 other% ratio
: >"$baseline"
failed_runs=0

# bench N RUN
bench() {
	local n=$1 r=$2 dir="$tmp/n$1-run$2" port rc=0
	mkdir -p "$dir"
	port=$(line_port) || die "no free UDP port"
	write_config "$dir" "$port"
	start_server "$dir"
	local pid=$server_pid
	say "N=$n run $r: switch pid $pid sip $sip_addr, line 127.0.0.1:$port, ${DURATION} s window (MEDIA=$MEDIA)"
	[ "$MEDIA" = 1 ] && say "N=$n run $r: $(grep -o -m1 'packet loop runs with[a-z -]*' "$dir/switch.log" || echo 'packet loop scheduling not logged'); $(grep -o -m1 'packet loop moves packets through io_uring\|packet loops use epoll[a-z :]*' "$dir/switch.log" || echo 'packet loops use epoll'); $(grep -o -m1 'bridged calls are forwarded in the kernel\|bridged calls are relayed in user space[a-z :]*' "$dir/switch.log" || echo 'no kernel path')"
	local rcv0 rcv1
	rcv0=$(udp_rcvbuf_errors)
	"$GEN" -switch "$sip_addr" -listen "127.0.0.1:$port" -bind 127.0.0.1 -calls "$n" \
		-duration "${DURATION}s" -setup-rate "$SETUP_RATE" -number-first "$FIRST" -number-count "$NUMBERS" \
		-switch-pid "$pid" -switch-metrics "http://$metrics_addr/metrics" -loops "$LOOPS" -tick "$TICK" -rt-priority "$GEN_RT_PRIO" -json -v \
		>"$dir/report.json" 2>"$dir/generator.log" || rc=$?
	rcv1=$(udp_rcvbuf_errors)
	kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/switch.log" >&2; die "the switch died during N=$n run $r (log: $dir/switch.log)"; }
	# A graceful stop: the calls have ended; recordings are complete once it exits.
	sleep 1
	stop_pid "$server_pid" 30
	server_pid=""
	local warns
	warns=$(grep -c '"level":"\(WARN\|ERROR\)"' "$dir/switch.log" || true)
	if ! jq -e . "$dir/report.json" >/dev/null 2>&1; then
		tail -20 "$dir/generator.log" >&2
		say "N=$n run $r: the generator wrote no report (exit $rc; log: $dir/generator.log)"
		failed_runs=$((failed_runs + 1))
		return
	fi
	[ "$rc" -eq 0 ] || {
		say "N=$n run $r: the generator exited $rc: $(jq -r '.error // ""' "$dir/report.json")"
		failed_runs=$((failed_runs + 1))
	}
	local bytes=n/a
	if [ -d "$dir/recordings" ]; then
		bytes=$(du -sb "$dir/recordings" | cut -f1)
	fi
	local row
	row=$(jq -r --arg n "$n" --arg r "$r" --arg bytes "$bytes" --arg rcv $((rcv1 - rcv0)) --arg warns "$warns" '
		def f(x; p): if x == null then "n/a" else (x * pow(10; p) | round / pow(10; p) | tostring) end;
		[ $n, $r,
		  f(.loss_pct.total; 4),
		  f(.switch.cpu_pct_per_call; 4),
		  f(.latency_us.p50; 0), f(.latency_us.p99; 0), f(.latency_us.p999; 0),
		  (if $bytes == "n/a" or .call_seconds == 0 then "n/a" else f(($bytes | tonumber) / .call_seconds; 0) end),
		  f(.switch.allocs_per_packet; 4),
		  f(.generator_cpu_pct_per_call; 4),
		  (.calls_up | tostring), (.calls_failed | tostring),
		  f(if .duration_s > 0 then 100 * .other_window_cpu_s / .duration_s else null end; 1),
		  f(.latency_us.max; 0), (.foreign_packets | tostring), (.misrouted_packets | tostring),
		  f(.call_seconds / ([.calls_up, 1] | max); 1), $bytes, $rcv, $warns,
		  f(.switch.relayed_packets; 0), (.packets_sent | tostring),
		  f(if .duration_s > 0 then 100 * (.stolen_window_cpu_s // 0) / .duration_s else null end; 1),
		  f(.sender_late_max_us / 1000; 1), (.generator_realtime_error // "")
		] | @tsv' "$dir/report.json")
	printf '%s\n' "$row" >>"$results"
	local f
	IFS=$'\t' read -ra f <<<"$row"
	local allocs=${f[8]}
	[ "$allocs" = n/a ] && allocs="n/a (switch has no media anchoring)"
	say "N=$n run $r: up ${f[10]}/$n, failed ${f[11]}, loss ${f[2]} %, switch CPU ${f[3]} % of a core per call," \
		"latency p50/p99/p99.9 ${f[4]}/${f[5]}/${f[6]} µs (max ${f[13]}), disk ${f[7]} B/call·s" \
		"(${f[17]} B in all, ${f[16]} s per call), allocs/packet $allocs; generator ${f[9]} % of a core per call;" \
		"other processes ${f[12]} % of a core, stolen by the hypervisor ${f[22]} %; foreign ${f[14]}, misrouted ${f[15]}, relayed ${f[20]} of ${f[21]} sent;" \
		"UDP RcvbufErrors Δ ${f[18]}; switch warn+error logs ${f[19]}; the generator's sends up to ${f[23]} ms late"
	[ -z "${f[24]:-}" ] || say "N=$n run $r: warning: the generator runs without real-time priority: ${f[24]}"
}

# bench_bare N RUN: the same run on the bare relay; the ratio is to the switch's run just before.
bench_bare() {
	local n=$1 r=$2 dir="$tmp/n$1-run$2-bare" rc=0 line="" i
	mkdir -p "$dir"
	"$RELAY" 127.0.0.1 "$RELAY_FIRST" "$n" >"$dir/relay.out" 2>&1 &
	relay_pid=$!
	for ((i = 0; i < 100; i++)); do
		line=$(grep -m1 '^ready' "$dir/relay.out" || true)
		[ -n "$line" ] && break
		kill -0 "$relay_pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$line" ] || { cat "$dir/relay.out" >&2; die "the bare relay did not start (N=$n)"; }
	"$GEN" -relay "127.0.0.1:$RELAY_FIRST" -bind 127.0.0.1 -calls "$n" -duration "${DURATION}s" \
		-switch-pid "$relay_pid" -loops "$LOOPS" -tick "$TICK" -rt-priority "$GEN_RT_PRIO" -json -v >"$dir/report.json" 2>"$dir/generator.log" || rc=$?
	stop_pid "$relay_pid" 5
	relay_pid=""
	jq -e . "$dir/report.json" >/dev/null 2>&1 || { tail -20 "$dir/generator.log" >&2; die "N=$n run $r: no report from the bare relay's run (exit $rc)"; }
	local sw row
	sw=$(awk -F'\t' -v n="$n" -v r="$r" '$1 == n && $2 == r {print $4}' "$results")
	row=$(jq -r --arg n "$n" --arg r "$r" --arg sw "${sw:-n/a}" '
		def f(x; p): if x == null then "n/a" else (x * pow(10; p) | round / pow(10; p) | tostring) end;
		[ $n, $r, f(.loss_pct.total; 4), f(.switch.cpu_pct_per_call; 4),
		  f(.latency_us.p50; 0), f(.latency_us.p99; 0), f(.latency_us.p999; 0),
		  f(if .duration_s > 0 then 100 * .other_window_cpu_s / .duration_s else null end; 1),
		  (if $sw == "n/a" or .switch.cpu_pct_per_call == null then "n/a"
		   else f(($sw | tonumber) / .switch.cpu_pct_per_call; 2) end),
		  f(if .duration_s > 0 then 100 * (.stolen_window_cpu_s // 0) / .duration_s else null end; 1)
		] | @tsv' "$dir/report.json")
	printf '%s\n' "$row" >>"$baseline"
	local f
	IFS=$'\t' read -ra f <<<"$row"
	say "N=$n run $r: bare relay: loss ${f[2]} %, CPU ${f[3]} % of a core per call, latency p50/p99/p99.9" \
		"${f[4]}/${f[5]}/${f[6]} µs; other processes ${f[7]} % of a core, stolen by the hypervisor ${f[9]} %;" \
		"the switch used ${f[8]} times as much"
}

for n in $CALLS; do
	for ((r = 1; r <= RUNS; r++)); do
		bench "$n" "$r"
		[ "$BASELINE" = 1 ] && bench_bare "$n" "$r"
	done
done

# median N COLUMN [FILE]: the median of a column over N's runs, ignoring n/a.
median() { tsv_median "${3:-$results}" "$1" "$2"; }

echo
echo "Media: $(nproc) cores shared by the switch and the generator; MEDIA=$MEDIA; ${DURATION} s window; medians of $RUNS run(s); $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo
echo "| calls | up | loss % | switch CPU % of a core per call | latency p50 / p99 / p99.9 µs | disk B/call·s | allocs/packet | generator CPU % per call | other processes % of a core |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in $CALLS; do
	printf '| %s | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s |\n' "$n" "$(median "$n" 11)" "$(median "$n" 3)" \
		"$(median "$n" 4)" "$(median "$n" 5)" "$(median "$n" 6)" "$(median "$n" 7)" "$(median "$n" 8)" \
		"$(median "$n" 9)" "$(median "$n" 10)" "$(median "$n" 13)"
done
if [ "$BASELINE" = 1 ]; then
	echo
	echo "The bare C relay (scripts/bare-relay.c) in the same runs, each right after the switch's:"
	echo
	echo "| calls | loss % | bare relay CPU % of a core per call | latency p50 / p99 / p99.9 µs | other processes % of a core | switch ÷ bare relay (median of the runs' ratios) |"
	echo "| --- | --- | --- | --- | --- | --- |"
	for n in $CALLS; do
		printf '| %s | %s | %s | %s / %s / %s | %s | %s |\n' "$n" "$(median "$n" 3 "$baseline")" \
			"$(median "$n" 4 "$baseline")" "$(median "$n" 5 "$baseline")" "$(median "$n" 6 "$baseline")" \
			"$(median "$n" 7 "$baseline")" "$(median "$n" 8 "$baseline")" "$(median "$n" 9 "$baseline")"
	done
fi
echo
echo "Goals: ≤ 0.07 % of a core per recorded call at 200 and ≤ 0.05 % at 500; < 0.1 % loss at 1,000;"
echo "p99.9 added latency < 10,000 µs while recording; 0 allocations per relayed packet."
# What one datagram costs this machine's kernel, to read the CPU figures against (the goals
# were set where it cost about 1.0 µs: ../shared/notes/media-performance.md).
if command -v cc >/dev/null 2>&1 && cc -O2 -Wall -o bin/loopback-floor scripts/loopback-floor.c; then
	echo "This machine: $(bin/loopback-floor 200000 5) (where the goals were set: about 1.0 µs)."
else
	say "no C compiler: the loopback floor (scripts/loopback-floor.c) is not measured"
fi
if awk -F'\t' '$13 != "n/a" && $13 + 0 > 10 {found = 1} END {exit !found}' "$results"; then
	say "warning: other processes took more than 10 % of a core during a window: those figures are not representative"
fi
if awk -F'\t' '$23 != "" && $23 != "n/a" && $23 + 0 > 5 {found = 1} END {exit !found}' "$results"; then
	say "warning: the hypervisor took more than 5 % of a core from this machine during a window (steal): its latency and CPU figures are not representative"
fi
[ "$failed_runs" -eq 0 ] || die "$failed_runs run(s) without a complete report"
ok_exit=1
