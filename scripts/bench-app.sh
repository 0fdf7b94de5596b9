#!/usr/bin/env bash
# Web app benchmark: the latency of each page of the customers' web app (package app) on a
# store seeded by cmd/trackline-seed with many sessions and a year of calls, measured with
# curl against `trackline serve` on loopback.
#
# Environment (defaults in brackets):
#   SESSIONS  sessions to seed [5000000]
#   CALLS     completed calls to seed, over the past 365 days [1000000]
#   NUMBERS   pool numbers to seed [10000] (10 customers, bench-00 ... bench-09)
#   REQUESTS  timed requests per page, one after the other [200]
#   WARMUP    untimed requests per page first [5]
#   CUSTOMER  the customer whose pages are asked for [bench-00]
#   CHANNEL   the channel of the calls page's channel filter [Partners] (4 % of the calls)
#   TAG       the tag of the calls page's tag filter [lead] (about 4 % of the calls)
#   BIN       run this trackline binary [build ./cmd/trackline into the temp dir]
#   SEED_DIR  reuse this seeded directory if its config.yaml has the web app's users (a seed
#             with --users), else seed into it [a temp dir, removed at exit]
#
# Quick run (about 15 s): SESSIONS=100000 CALLS=20000 REQUESTS=50 bash scripts/bench-app.sh
#
# It logs in as admin@<customer>.bench and as operator@trackline.bench (password
# bench-password, written by the seed's --users) with curl's cookie jar, then asks for each
# page WARMUP times and REQUESTS times more, one request at a time over one keep-alive
# connection, and reports p50, p95 and p99 (nearest rank) of curl's time_total per page. Every
# request must answer 200. The pages that list calls or show a call or sessions write an audit
# entry (a durable commit) per request, as they do for a user. Beyond the pages, two worst
# cases: the calls list with a tag no call has, over 30 and 365 days, which reads every call of
# the range. Traffic goes to 127.0.0.1 only; the server is stopped by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-5000000}
CALLS=${CALLS:-1000000}
NUMBERS=${NUMBERS:-10000}
REQUESTS=${REQUESTS:-200}
WARMUP=${WARMUP:-5}
CUSTOMER=${CUSTOMER:-bench-00}
CHANNEL=${CHANNEL:-Partners}
TAG=${TAG:-lead}
PASSWORD=bench-password
# Bounds: a request's answer, a page's whole loop, the server's start (bbolt reads the whole
# file at open: an 8 GB store on a cold page cache took 100 s).
REQ_MAX_S=30
PAGE_MAX_S=900
READY_MAX_S=600

say() { printf 'bench-app: %s\n' "$*"; }
die() { printf 'bench-app: FAIL: %s\n' "$*" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-app.XXXXXX")
dir=${SEED_DIR:-$tmp/seed}
# The tree's cmd/trackline, built into the temp dir: a `make build` or `make run` meanwhile
# must not swap the binary under the server (or under perf, reading its symbols). BIN runs a
# prebuilt binary instead.
build=yes
if [ -n "${BIN:-}" ]; then build=""; else BIN=$tmp/trackline; fi
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

say "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
if [ -n "$build" ]; then
	version=$(git describe --always --dirty 2>/dev/null || echo dev)
	say "go build -o $BIN ./cmd/trackline (what bin/trackline would be), version $version"
	go build -ldflags "-X main.version=$version" -o "$BIN" ./cmd/trackline
else
	version=$("$BIN" version 2>/dev/null || echo "$BIN")
	say "prebuilt $BIN, version $version"
fi
go build -o "$tmp/trackline-seed" ./cmd/trackline-seed

if [ -f "$dir/config.yaml" ] && grep -q '^listen:' "$dir/config.yaml"; then
	say "reusing seeded $dir"
else
	[ -e "$dir/trackline.db" ] && die "$dir holds a store without the web app's users: seed it with --users or use another SEED_DIR"
	mkdir -p "$dir"
	say "trackline-seed --data $dir --sessions $SESSIONS --calls $CALLS --numbers $NUMBERS --users"
	t0=$EPOCHREALTIME
	"$tmp/trackline-seed" --data "$dir" --sessions "$SESSIONS" --calls "$CALLS" --numbers "$NUMBERS" --users
	say "seeded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s"
fi
say "store: $(du -sh "$dir/trackline.db" | cut -f1) ($(du -sh "$dir" | cut -f1) in $dir)"

# The server logs to a file; its ready line names the web app's address.
log="$tmp/server.log"
t0=$EPOCHREALTIME
"$BIN" serve --config "$dir/config.yaml" --data "$dir" \
	--http 127.0.0.1:0 --admin 127.0.0.1:0 --metrics 127.0.0.1:0 --app 127.0.0.1:0 --sip 127.0.0.1:0 \
	--log-format json >/dev/null 2>"$log" &
server_pid=$!
disown "$server_pid" # no "Killed" job notice
app=""
for ((i = 0; i < READY_MAX_S * 10; i++)); do
	app=$(sed -n 's/.*"msg":"ready".*"app":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$log" | head -n 1)
	[ -n "$app" ] && break
	kill -0 "$server_pid" 2>/dev/null || die "the server exited: $(tail -n 3 "$log")"
	sleep 0.1
done
[ -n "$app" ] || die "no ready line with a loopback app address within $READY_MAX_S s: $(tail -n 3 "$log")"
say "server pid $server_pid ready in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s, web app on $app"
base="http://$app"

# login JAR EMAIL: logs in and checks that a page then carries the session's CSRF token.
login() {
	local jar=$1 email=$2 code
	code=$(curl -sS --max-time "$REQ_MAX_S" -c "$jar" -b "$jar" -o /dev/null -w '%{http_code}' \
		--data-urlencode "email=$email" --data-urlencode "password=$PASSWORD" "$base/login")
	[ "$code" = 303 ] || die "login as $email: HTTP $code (want 303)"
	curl -sS --max-time "$REQ_MAX_S" -b "$jar" -o "$tmp/page.html" "$base/account"
	csrf=$(sed -n 's/.*<meta name="csrf-token" content="\([^"]*\)".*/\1/p' "$tmp/page.html" | head -n 1)
	[ -n "$csrf" ] || die "login as $email: no CSRF token in /account"
}
admin_jar=$tmp/admin.jar
operator_jar=$tmp/operator.jar
login "$admin_jar" "admin@$CUSTOMER.bench"
admin_csrf=$csrf
login "$operator_jar" "operator@trackline.bench"
operator_csrf=$csrf
say "logged in as admin@$CUSTOMER.bench and operator@trackline.bench"

c="/c/$CUSTOMER"
curl -sS --max-time "$REQ_MAX_S" -b "$admin_jar" -o "$tmp/page.html" "$base$c/calls"
call=$(grep -o "href=\"$c/calls/[0-9A-Z]*\"" "$tmp/page.html" | head -n 1 | sed 's/.*calls\/\([0-9A-Z]*\)"/\1/' || true)
[ -n "$call" ] || die "no call on $c/calls"
curl -sS --max-time "$REQ_MAX_S" -b "$admin_jar" -o "$tmp/page.html" "$base$c/numbers"
channel=$(grep -o "href=\"$c/channels/[a-z0-9-]*\"" "$tmp/page.html" | grep -m1 partners | sed 's/.*channels\/\([a-z0-9-]*\)"/\1/' || true)
[ -n "$channel" ] || channel=$(grep -o "href=\"$c/channels/[a-z0-9-]*\"" "$tmp/page.html" | head -n 1 | sed 's/.*channels\/\([a-z0-9-]*\)"/\1/' || true)
[ -n "$channel" ] || die "no channel on $c/numbers"
today=$(date -u +%Y-%m-%d)
year_ago=$(date -u -d '364 days ago' +%Y-%m-%d)
urlenc() { local LC_ALL=C s=$1 out="" ch i; for ((i = 0; i < ${#s}; i++)); do ch=${s:i:1}
	case $ch in [a-zA-Z0-9.~_-]) out+=$ch ;; *) out+=$(printf '%%%02X' "'$ch") ;; esac; done; printf '%s' "$out"; }

# name|jar|path
pages=(
	"overview (30 days)|$admin_jar|$c/"
	"overview (365 days)|$admin_jar|$c/?from=$year_ago&to=$today"
	"calls|$admin_jar|$c/calls"
	"calls, channel $CHANNEL|$admin_jar|$c/calls?channel=$(urlenc "$CHANNEL")"
	"calls, tag $TAG|$admin_jar|$c/calls?tag=$(urlenc "$TAG")"
	"call|$admin_jar|$c/calls/$call"
	"numbers|$admin_jar|$c/numbers"
	"settings|$admin_jar|$c/settings"
	"users|$admin_jar|$c/users"
	"audit|$admin_jar|$c/audit"
	"channel rules ($channel)|$admin_jar|$c/channels/$channel"
	"operator|$operator_jar|/operator"
	# Beyond the pages above: a calls filter that matches nothing, so that the page reads
	# every call of the range (at most store.MaxCallScan) and shows none.
	"calls, tag no call has (worst case)|$admin_jar|$c/calls?tag=no-such-tag"
	"calls, tag no call has, 365 days (worst case)|$admin_jar|$c/calls?tag=no-such-tag&from=$year_ago&to=$today"
)

# pct FILE P: the P-th percentile (nearest rank) of the sorted numbers in FILE.
pct() { awk -v p="$2" '{v[NR] = $1} END {i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; printf "%.1f", v[i]}' "$1"; }

say "$REQUESTS requests per page after $WARMUP warm-up ones, one at a time; load now $(cut -d' ' -f1-3 /proc/loadavg)"
cpu0=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
results=()
fails=0
for entry in "${pages[@]}"; do
	IFS='|' read -r name jar path <<<"$entry"
	# One curl for the page's requests: one keep-alive connection, a line per request.
	cfg="$tmp/curl.cfg"
	: >"$cfg"
	for ((i = 0; i < WARMUP + REQUESTS; i++)); do
		printf 'url = "%s%s"\noutput = "/dev/null"\n' "$base" "$path" >>"$cfg"
	done
	out="$tmp/times"
	timeout "$PAGE_MAX_S" curl -sS --max-time "$REQ_MAX_S" -b "$jar" -K "$cfg" \
		-w '%{http_code} %{time_total} %{size_download}\n' >"$out" || die "$name: curl failed or took over $PAGE_MAX_S s"
	tail -n +"$((WARMUP + 1))" "$out" >"$out.timed"
	n=$(wc -l <"$out.timed")
	bad=$(awk '$1 != 200' "$out.timed" | wc -l)
	[ "$n" -eq "$REQUESTS" ] || die "$name: $n answers, want $REQUESTS"
	awk '{printf "%.3f\n", $2 * 1000}' "$out.timed" | sort -g >"$out.ms"
	p50=$(pct "$out.ms" 50) p95=$(pct "$out.ms" 95) p99=$(pct "$out.ms" 99)
	max=$(tail -n 1 "$out.ms" | awk '{printf "%.1f", $1}')
	kb=$(awk '{s += $3} END {printf "%.0f", s / NR / 1024}' "$out.timed")
	ok=yes
	awk -v v="$p95" 'BEGIN {exit !(v >= 150)}' && ok=NO
	[ "$bad" -eq 0 ] || { ok="NO ($bad not 200)"; fails=$((fails + 1)); }
	results+=("$(printf '| %s | `%s` | %s | %s | %s | %s | %s | %s |' "$name" "${path//$call/<call id>}" "$p50" "$p95" "$p99" "$max" "$kb" "$ok")")
	say "$name: p50 $p50 ms, p95 $p95 ms, p99 $p99 ms, max $max ms, $kb KiB, non-200: $bad"
done
cpu1=$(awk '{print $14 + $15}' "/proc/$server_pid/stat")
rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")

# Log out (a POST with the CSRF token), then stop the server.
for pair in "$admin_jar $admin_csrf" "$operator_jar $operator_csrf"; do
	read -r jar tok <<<"$pair"
	curl -sS --max-time "$REQ_MAX_S" -b "$jar" -o /dev/null --data-urlencode "csrf=$tok" "$base/logout" || true
done
kill -TERM "$server_pid"
for ((i = 0; i < 100; i++)); do # at most 10 s, then SIGKILL
	kill -0 "$server_pid" 2>/dev/null || break
	sleep 0.1
done
kill -KILL "$server_pid" 2>/dev/null || true
server_pid=""

echo
echo "web app pages of version $version, customer $CUSTOMER of a store with $( [ -n "${SEED_DIR:-}" ] && echo "the seed in $SEED_DIR" || echo "$SESSIONS sessions and $CALLS calls"), $REQUESTS requests each (ms)"
echo "server CPU over the timed loops: $(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b - a) / hz}') s; RSS at the end $rss MiB; load after $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| page | path | p50 | p95 | p99 | max | KiB | p95 < 150 ms |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${results[@]}"
[ "$fails" -eq 0 ] || die "$fails pages answered other than 200"
