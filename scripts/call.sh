#!/usr/bin/env bash
# One demo call through a running `make run` (the embedded default config): a sipp business
# line answers on 127.0.0.1:5090 (the demo customer's business_lines), a sipp trunk calls the
# static 'Flyer' number +31850000101 through the switch on 127.0.0.1:5060, hears the
# disclaimer, and both sides play audio (tone patterns made by scripts/mkpcap, the caller's
# around 440 Hz, the line's around 660 Hz) for TALK_MS before the caller hangs up; the call
# record is read back from the admin API, and the recording is in the web app.
#
#   make run     # in one terminal
#   make call    # in another
#
# Environment (defaults in brackets):
#   SIP_ADDR    the switch [127.0.0.1:5060]
#   ADMIN_ADDR  the admin API [127.0.0.1:8081]
#   TOKEN       admin token [$TRACKLINE_ADMIN_TOKEN, else demo-admin-token]
#   NUMBER      the dialled number [+31850000101]
#   LINE_ADDR   where the business line listens [127.0.0.1:5090]
#   TALK_MS     talk time before the caller hangs up [5000]
#   KEEP        1: keep the sipp traces [0; kept on failure]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/sipp.sh

SIP_ADDR=${SIP_ADDR:-127.0.0.1:5060}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:8081}
TOKEN=${TOKEN:-${TRACKLINE_ADMIN_TOKEN:-demo-admin-token}}
NUMBER=${NUMBER:-+31850000101}
LINE_ADDR=${LINE_ADDR:-127.0.0.1:5090}
TALK_MS=${TALK_MS:-5000}
KEEP=${KEEP:-0}

say() { printf 'call: %s\n' "$*"; }
die() { printf 'call: FAIL: %s\n' "$*" >&2; exit 1; }

for cmd in sipp curl jq; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (run scripts/deps.sh)"
done
curl -fsS --max-time 3 -o /dev/null -H "Authorization: Bearer $TOKEN" "http://$ADMIN_ADDR/healthz" ||
	die "no trackline admin API on $ADMIN_ADDR: start the switch with 'make run' in another terminal"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-call.XXXXXX")
line_pid=""
ok=0
cleanup() {
	stop_pid "$line_pid" 2
	if [ "$ok" -eq 1 ] && [ "$KEEP" != 1 ]; then
		rm -rf "$tmp"
	else
		say "kept the sipp traces in $tmp"
	fi
}
trap cleanup EXIT

scenarios=$(pwd)/$SIPP_SCENARIOS
go run ./scripts/mkpcap "$tmp" 60 || die "could not write the audio files"
line_ip=${LINE_ADDR%:*}
line_port=${LINE_ADDR##*:}
line_media=$(free_udp_port) || die "no free UDP port"
say "business line: sipp uas-media.xml on $LINE_ADDR, answers after 1 s, plays callee.pcap"
(cd "$tmp" && exec sipp -sf "$scenarios/uas-media.xml" -i "$line_ip" -p "$line_port" -mp "$line_media" -d 1000 -m 1 \
	-timeout 60s -timeout_error -nostdin -aa \
	-trace_msg -message_file "$tmp/line.msg" -trace_err -error_file "$tmp/line.err" \
	>/dev/null 2>"$tmp/line.stderr") &
line_pid=$!
wait_udp_bound "$line_pid" "$line_port" || {
	cat "$tmp/line.stderr" >&2
	die "the business line could not listen on $LINE_ADDR (in use?)"
}

trunk_port=$(free_udp_port) || die "no free UDP port"
trunk_media=$(free_udp_port) || die "no free UDP port"
say "trunk: sipp uac-media.xml from 127.0.0.1:$trunk_port calls $NUMBER via $SIP_ADDR, plays caller.pcap, talks ${TALK_MS} ms"
rc=0
(cd "$tmp" && exec sipp -sf "$scenarios/uac-media.xml" -i 127.0.0.1 -p "$trunk_port" -mp "$trunk_media" -s "$NUMBER" \
	-key caller +31612345678 -d "$TALK_MS" -m 1 -timeout 60s -timeout_error -nostdin -aa \
	-trace_msg -message_file "$tmp/trunk.msg" -trace_err -error_file "$tmp/trunk.err" \
	"$SIP_ADDR" >/dev/null 2>"$tmp/trunk.stderr") || rc=$?
line_rc=0
wait "$line_pid" || line_rc=$?
line_pid=""

# The ladder, as the trunk and the business line saw it.
ladder() { awk '/^(UDP|TCP) message (sent|received)/ {dir = ($3 == "sent") ? "->" : "<-"; getline; while ($0 == "") getline; print "  " dir " " $0}' "$1"; }
say "trunk side:"
ladder "$tmp/trunk.msg"
say "business line side:"
ladder "$tmp/line.msg"

[ "$rc" -eq 0 ] || die "the trunk's call failed (sipp exit $rc); see $tmp/trunk.err and $tmp/trunk.msg"
[ "$line_rc" -eq 0 ] || die "the business line's call failed (sipp exit $line_rc); see $tmp/line.err and $tmp/line.msg"

# The record is complete once the switch has ended both legs.
rec=""
for ((i = 0; i < 50; i++)); do
	rec=$(curl -fsS --max-time 5 -H "Authorization: Bearer $TOKEN" "http://$ADMIN_ADDR/v1/calls?limit=1") ||
		die "GET /v1/calls failed"
	[ -n "$(jq -r '.calls[0].end // empty' <<<"$rec")" ] && break
	sleep 0.1
done
say "GET http://$ADMIN_ADDR/v1/calls?limit=1"
jq . <<<"$rec"
ok=1
say "hear it in the web app: http://127.0.0.1:8082/c/demo/calls (demo@trackline.test / demo-password)"
