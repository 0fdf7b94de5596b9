#!/usr/bin/env bash
# The floor of this machine for relaying RTP, by I/O design: the bench-media load (each call
# 50 packets/s of PCMU each way, stamped by bin/trackline-mediaload) through bare C relays
# with no SIP, parsing or recording, so that the switch's figures can be read against what
# the kernel alone costs here. Four relays, run in turn within each round:
#   epoll        scripts/bare-relay.c: one epoll loop, a recvfrom and a send per datagram
#   epoll+wait   the same with a batch wait of WAIT_US (the switch's media.batch_wait)
#   uring        scripts/bare-relay-uring.c: io_uring, multishot receives, batched sends
#   uring+wait   the same with the batch wait
# The uring relays need liburing (apt-get install liburing-dev); without it they are left out
# and the script says so. First, scripts/loopback-floor.c measures one loopback send plus
# recv on warm caches (about 1.0 µs on the machine of ../shared/notes/media-performance.md,
# where the media goals were set), so that figures from different machines can be compared.
#
# Environment: CALLS [500], DURATION s per run [15], RUNS rounds [2], WAIT_US [2000], TICK the
# generator's pacing step [1ms]. Prints per run, then the medians, as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sipp.sh # stop_pid, tsv_median
CALLS=${CALLS:-500}
DURATION=${DURATION:-15}
RUNS=${RUNS:-2}
WAIT_US=${WAIT_US:-2000}
TICK=${TICK:-1ms}
FIRST=10000 # the relays' ports: FIRST .. FIRST+4N, below the ephemeral range

say() { printf 'bench-floor: %s\n' "$*"; }
die() { printf 'bench-floor: FAIL: %s\n' "$*" >&2; exit 1; }
for cmd in go jq awk cc; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (apt-get install gcc jq)"
done
[ "$CALLS" -ge 1 ] && [ "$CALLS" -le 10000 ] || die "CALLS must be 1-10000"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p bin
go build -o bin/trackline-mediaload ./cmd/trackline-mediaload
cc -O2 -Wall -Wextra -o bin/bare-relay scripts/bare-relay.c
cc -O2 -Wall -Wextra -o bin/loopback-floor scripts/loopback-floor.c
relays=("epoll:bin/bare-relay:0" "epoll+wait:bin/bare-relay:$WAIT_US")
if printf '#include <liburing.h>\n' | cc -E - >/dev/null 2>&1; then
	cc -O2 -Wall -Wextra -o bin/bare-relay-uring scripts/bare-relay-uring.c -luring
	relays+=("uring:bin/bare-relay-uring:0" "uring+wait:bin/bare-relay-uring:$WAIT_US")
else
	say "liburing not installed (apt-get install liburing-dev): the io_uring relays are left out"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench-floor.XXXXXX")
relay_pid=""
trap 'stop_pid "$relay_pid" 5; rm -rf "$tmp"' EXIT
rows="$tmp/rows.tsv" # name round cpu loss p50 p99 p999 other
: >"$rows"

syscalls=$(bin/loopback-floor) || die "loopback-floor failed"
say "this machine: $syscalls"

for ((r = 1; r <= RUNS; r++)); do
	for spec in "${relays[@]}"; do
		IFS=: read -r name bin wait <<<"$spec"
		"$bin" 127.0.0.1 "$FIRST" "$CALLS" "$wait" >"$tmp/relay.out" 2>&1 &
		relay_pid=$!
		for ((i = 0; i < 100; i++)); do
			grep -q '^ready' "$tmp/relay.out" && break
			kill -0 "$relay_pid" 2>/dev/null || die "$name did not start: $(cat "$tmp/relay.out")"
			sleep 0.05
		done
		rc=0
		bin/trackline-mediaload -relay "127.0.0.1:$FIRST" -bind 127.0.0.1 -calls "$CALLS" -duration "${DURATION}s" \
			-switch-pid "$relay_pid" -tick "$TICK" -json >"$tmp/report.json" 2>"$tmp/generator.log" || rc=$?
		stop_pid "$relay_pid" 5
		relay_pid=""
		jq -e . "$tmp/report.json" >/dev/null 2>&1 || { tail -20 "$tmp/generator.log" >&2; die "$name: no report (exit $rc)"; }
		row=$(jq -r --arg n "$name" --arg r "$r" '
			def f(x; p): if x == null then "n/a" else (x * pow(10; p) | round / pow(10; p) | tostring) end;
			[$n, $r, f(.switch.cpu_pct_per_call; 4), f(.loss_pct.total; 4),
			 f(.latency_us.p50; 0), f(.latency_us.p99; 0), f(.latency_us.p999; 0),
			 f(if .duration_s > 0 then 100 * .other_window_cpu_s / .duration_s else null end; 1),
			 f(if .duration_s > 0 then 100 * (.stolen_window_cpu_s // 0) / .duration_s else null end; 1)] | @tsv' "$tmp/report.json")
		printf '%s\n' "$row" >>"$rows"
		IFS=$'\t' read -ra f <<<"$row"
		say "round $r, $name: ${f[2]} % of a core per call, loss ${f[3]} %, latency p50/p99/p99.9 ${f[4]}/${f[5]}/${f[6]} µs, other processes ${f[7]} % of a core, stolen by the hypervisor ${f[8]} %"
	done
done

median() { tsv_median "$rows" "$1" "$2"; } # median NAME COLUMN
echo
echo "$CALLS calls, ${DURATION} s, medians of $RUNS rounds (batch wait $WAIT_US µs where named); $syscalls:"
echo
echo "| relay | CPU % of a core per call | loss % | latency p50 / p99 / p99.9 µs | other processes % of a core |"
echo "| --- | --- | --- | --- | --- |"
for spec in "${relays[@]}"; do
	name=${spec%%:*}
	printf '| %s | %s | %s | %s / %s / %s | %s |\n' "$name" "$(median "$name" 3)" "$(median "$name" 4)" \
		"$(median "$name" 5)" "$(median "$name" 6)" "$(median "$name" 7)" "$(median "$name" 8)"
done
