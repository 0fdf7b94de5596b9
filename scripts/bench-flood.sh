#!/usr/bin/env bash
# INVITE flood benchmark of the real binary (issue 20): does a flood from a source that is
# no trunk delay the trunk's calls? sipp is the trunk (UAC, 127.0.0.1) and the business line
# (UAS); a third sipp, from FLOOD_IP (another loopback address, outside the trunk's
# sources), sends INVITEs to a tracked number at FLOOD_RATE, send-only
# (scripts/sipp-flood/flood-invite.xml: no waiting, no retransmissions). Runs alternate:
# "quiet" (the trunk alone) and "flood" (the trunk while the flood runs, from 1 s before
# the trunk's first call to its last), REPEATS times each, each run with a fresh switch.
#
# Environment (defaults in brackets):
#   RATE         the trunk's call rate, calls per second [200]
#   CALLS        the trunk's calls per run [3000]
#   CALL_MS      talk time of each call (sipp -d) [1000]
#   FLOOD_RATE   INVITEs a second from FLOOD_IP [5000]
#   FLOOD_IP     the flood's source address, on 127.0.0.0/8, not a trunk source [127.0.0.2]
#   REPEATS      quiet+flood pairs [3]
#   EDGE_YAML    extra lines for the sip: section, e.g. '  edge: {ban_after: 1000000}' [none]
#   BIN          the switch to run; when set it is not built [bin/trackline, built if stale]
#   KEEP         1: keep the temp dir [0; kept on failure]
#
# Per run: the trunk's calls, failed calls (sipp), setup p50/p99 (INVITE to 200 at the
# trunk, ms), the flood's achieved rate, what the edge did with it
# (trackline_sip_edge_dropped_total by reason, bans), answers the flood got (sipp counts
# them as messages for calls already ended), the switch's CPU p95 per second and its UDP receive drops. At the
# end: the medians, and the flood runs' p99 over the quiet runs' p99 (the target: at most
# 2, with no failed call). Traffic goes to 127.0.0.0/8 only and every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sipp.sh

RATE=${RATE:-200}
CALLS=${CALLS:-3000}
CALL_MS=${CALL_MS:-1000}
FLOOD_RATE=${FLOOD_RATE:-5000}
FLOOD_IP=${FLOOD_IP:-127.0.0.2}
REPEATS=${REPEATS:-3}
EDGE_YAML=${EDGE_YAML:-}
KEEP=${KEEP:-0}
BIN_SET=${BIN:+1}
BIN=${BIN:-bin/trackline}
FIRST=31850100000
NUMBERS=200
CLK_TCK=$(getconf CLK_TCK)

say() { printf 'bench-flood: %s\n' "$*"; }
die() { printf 'bench-flood: FAIL: %s\n' "$*" >&2; exit 1; }
case $FLOOD_IP in 127.*) ;; *) die "FLOOD_IP=$FLOOD_IP: want an address on 127.0.0.0/8" ;; esac
[ "$FLOOD_IP" != 127.0.0.1 ] || die "FLOOD_IP must not be the trunk's 127.0.0.1"
for cmd in sipp curl jq go awk; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (run scripts/deps.sh)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench-flood.XXXXXX")
server_pid="" line_pid="" flood_pid="" sampler_pid=""
ok_exit=0
cleanup() {
	local rc=$?
	[ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
	stop_pid "$flood_pid" 2
	stop_pid "$line_pid" 2
	stop_pid "$server_pid" 5
	if [ "$rc" -eq 0 ] && [ "$ok_exit" -eq 1 ] && [ "$KEEP" != 1 ]; then
		rm -rf "$tmp"
	else
		say "kept $tmp"
	fi
}
trap cleanup EXIT

[ -n "$BIN_SET" ] || build_switch "$BIN"
[ -x "$BIN" ] || die "no switch at $BIN"

{
	echo SEQUENTIAL
	for ((i = 0; i < NUMBERS; i++)); do echo "+$((FIRST + i));"; done
} >"$tmp/numbers.csv"
scenarios=$PWD/$SIPP_SCENARIOS
sed 's/\[service\]/[field0]/g' "$scenarios/uac-answer.xml" >"$tmp/uac.xml"
flood_xml=$PWD/scripts/sipp-flood/flood-invite.xml

write_config() {
	cat >"$tmp/config.yaml" <<YAML
country_code: "31"
listen:
  http: 127.0.0.1:0
  admin: 127.0.0.1:0
  metrics: 127.0.0.1:0
admin_token: bench-admin-token-0001
sip:
  listen: 127.0.0.1:0
  trunks:
    - name: bench
      sources: ["127.0.0.1/32"]
  ring_timeout: 10s
  drain_timeout: 2s
$EDGE_YAML
customers:
  - id: bench
    name: Bench BV
    status: active
    site_key: bench-site-key-0001
    allowed_origins: ["http://127.0.0.1"]
    business_lines: ["sip:+31852087972@127.0.0.1:$1"]
    display_numbers: ["+31852087972"]
    pool_range: {first: "+$FIRST", count: $NUMBERS}
YAML
}

start_server() {
	local log=$1 line="" i
	"$BIN" serve --config "$tmp/config.yaml" --data "$tmp/data-$run" --log-format json >/dev/null 2>"$log" &
	server_pid=$!
	for ((i = 0; i < 300; i++)); do
		line=$(grep -m1 '"msg":"ready"' "$log" || true)
		[ -n "$line" ] && break
		kill -0 "$server_pid" 2>/dev/null || { tail -20 "$log" >&2; die "switch exited before ready"; }
		sleep 0.1
	done
	[ -n "$line" ] || die "no ready line within 30 s (log: $log)"
	sip_addr=$(jq -r '.sip // empty' <<<"$line")
	metrics_addr=$(jq -r '.metrics' <<<"$line")
}

printf 'kind\trun\tcalls\tfailed\tp50_ms\tp99_ms\tflood_sent\tflood_cps\tflood_answers\tedge_drops\tbans\tcpu_p95\tsw_drops\n' >"$tmp/results.tsv"
run=0

# bench KIND: one run, quiet or flood.
bench() {
	local kind=$1
	run=$((run + 1))
	local dir="$tmp/run-$run-$kind"
	mkdir -p "$dir"
	local line_port uac_port flood_port
	line_port=$(free_udp_port) || die "no free UDP port"
	write_config "$line_port"
	start_server "$dir/switch.log"
	local pid=$server_pid sip_port=${sip_addr##*:}
	(cd "$dir" && exec sipp -sf "$scenarios/uas-answer.xml" -i 127.0.0.1 -p "$line_port" -nostdin -aa -buff_size 4194304 \
		-timeout 3600s >/dev/null 2>"$dir/line.stderr") &
	line_pid=$!
	wait_udp_bound "$line_pid" "$line_port" || die "the business line could not listen"

	local secs=$(((CALLS + RATE - 1) / RATE))
	local flood_n=0 flood_t0=0 flood_t1=0
	if [ "$kind" = flood ]; then
		flood_port=$(free_udp_port) || die "no free UDP port"
		flood_n=$((FLOOD_RATE * (secs + CALL_MS / 1000 + 3)))
		flood_t0=$(date +%s.%N)
		(cd "$dir" && exec sipp -sf "$flood_xml" -s +$FIRST -i "$FLOOD_IP" -p "$flood_port" -r "$FLOOD_RATE" -rp 1000 \
			-m "$flood_n" -l 1000000 -nostdin -buff_size 4194304 -trace_stat -stf "$dir/flood-stat.csv" -fd 1 \
			-timeout $((secs + 30))s "$sip_addr" >/dev/null 2>"$dir/flood.stderr") &
		flood_pid=$!
		sleep 1
	fi

	uac_port=$(free_udp_port) || die "no free UDP port"
	local limit=$((RATE * (CALL_MS / 1000 + 5)))
	local timeout=$((secs + CALL_MS / 1000 + 60))
	say "run $run ($kind): $CALLS calls at $RATE CPS${flood_port:+, flood $FLOOD_RATE/s from $FLOOD_IP}"
	sample_cpu "$pid" "$dir/cpu.txt" $((timeout + 10)) &
	sampler_pid=$!
	local rc=0
	(cd "$dir" && exec sipp -sf "$tmp/uac.xml" -inf "$tmp/numbers.csv" -i 127.0.0.1 -p "$uac_port" \
		-r "$RATE" -rp 1000 -m "$CALLS" -l "$limit" -d "$CALL_MS" -nostdin -aa -buff_size 4194304 \
		-trace_stat -stf "$dir/trunk-stat.csv" -fd 1 -trace_rtt -rtt_freq 100 \
		-timeout "${timeout}s" -timeout_error "$sip_addr" >/dev/null 2>"$dir/trunk.stderr") || rc=$?
	local sw_drops
	sw_drops=$(udp_drops "$sip_port")
	if [ -n "$flood_pid" ]; then
		stop_pid "$flood_pid" 3
		flood_pid=""
		flood_t1=$(date +%s.%N)
	fi
	kill "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	sampler_pid=""
	kill -0 "$pid" 2>/dev/null || die "the switch died during run $run (log: $dir/switch.log)"
	curl -fsS --max-time 5 "http://$metrics_addr/metrics" >"$dir/metrics.txt" 2>/dev/null || true
	stop_pid "$line_pid" 3
	line_pid=""
	stop_pid "$server_pid" 10
	server_pid=""

	local stat="$dir/trunk-stat.csv"
	[ -s "$stat" ] || die "sipp wrote no statistics (run $run, exit $rc)"
	local ok failed p50=n/a p99=n/a rtt
	ok=$(stat_field "$stat" 'SuccessfulCall(C)')
	failed=$(stat_field "$stat" 'FailedCall(C)')
	rtt=$(ls "$dir"/uac*_rtt.csv 2>/dev/null | head -1 || true)
	if [ -n "$rtt" ]; then
		awk -F';' 'NR > 1 && $3 == "setup" {print $2}' "$rtt" >"$dir/setup-ms.txt"
		p50=$(percentile "$dir/setup-ms.txt" 50)
		p99=$(percentile "$dir/setup-ms.txt" 99)
	fi
	local fsent=0 fcps=0 fans=0
	if [ "$kind" = flood ] && [ -s "$dir/flood-stat.csv" ]; then
		fsent=$(stat_field "$dir/flood-stat.csv" 'TotalCallCreated')
		fans=$(stat_field "$dir/flood-stat.csv" 'DeadCallMsgs(C)')
		fcps=$(awk -v n="$fsent" -v a="$flood_t0" -v b="$flood_t1" 'BEGIN {printf "%.0f", (b > a) ? n / (b - a) : 0}')
	fi
	local drops bans
	drops=$(awk '/^trackline_sip_edge_dropped_total\{/ && $2 > 0 {r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "%s%s=%d", sep, r, $2; sep = ","} END {if (!sep) printf "none"}' "$dir/metrics.txt")
	bans=$(awk '/^trackline_sip_edge_bans_total / {print $2 + 0}' "$dir/metrics.txt")
	printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$run" "$ok" "$failed" "$p50" "$p99" "$fsent" "$fcps" "$fans" \
		"$drops" "${bans:-n/a}" "$(percentile "$dir/cpu.txt" 95)" "$sw_drops" >>"$tmp/results.tsv"
	tail -1 "$tmp/results.tsv"
}

say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < REPEATS; r++)); do
	bench quiet
	bench flood
done
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
column -t -s $'\t' "$tmp/results.tsv"
q99=$(tsv_median "$tmp/results.tsv" quiet 6)
f99=$(tsv_median "$tmp/results.tsv" flood 6)
failed=$(awk -F'\t' 'NR > 1 && $4 != "n/a" {s += $4} END {print s + 0}' "$tmp/results.tsv")
ratio=$(awk -v q="$q99" -v f="$f99" 'BEGIN {if (q + 0 > 0) printf "%.2f", f / q; else print "n/a"}')
say "setup p99 median: quiet $q99 ms, flood $f99 ms (ratio $ratio); failed calls in all runs: $failed"
ok_exit=1
