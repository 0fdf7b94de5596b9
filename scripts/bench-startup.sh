#!/usr/bin/env bash
# Startup benchmark: time from exec of `trackline serve` to its ready log line, on a store
# seeded by cmd/trackline-seed with many sessions.
#
# Environment (defaults in brackets):
#   RUNS      number of timed starts [5]
#   SESSIONS  sessions to seed [1000000]
#   NUMBERS   pool numbers to seed [10000]
#   SEED_DIR  reuse this seeded directory if it holds config.yaml, else seed into it
#             [a temp dir, removed at exit]
#
# Each start is a cold process on a warm page cache (the seed just wrote the files, and each
# run reads them again). RSS is VmRSS read right after the ready line, with its anonymous part
# (heap) apart from the file-backed part (the bbolt mmap).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SESSIONS=${SESSIONS:-1000000}
NUMBERS=${NUMBERS:-10000}
BIN=bin/trackline

say() { printf 'bench-startup: %s\n' "$*"; }
die() { printf 'bench-startup: FAIL: %s\n' "$*" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-startup.XXXXXX")
dir=${SEED_DIR:-$tmp/seed}
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

say "go build -o $BIN ./cmd/trackline"
go build -ldflags "-X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" \
	-o "$BIN" ./cmd/trackline

what="$SESSIONS sessions, $NUMBERS numbers"
if [ -f "$dir/config.yaml" ]; then
	say "reusing seeded $dir"
	what="the store in $dir"
else
	mkdir -p "$dir"
	say "go run ./cmd/trackline-seed --data $dir --sessions $SESSIONS --numbers $NUMBERS"
	t0=$EPOCHREALTIME
	go run ./cmd/trackline-seed --data "$dir" --sessions "$SESSIONS" --numbers "$NUMBERS"
	say "seeded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s"
	[ -f "$dir/config.yaml" ] || die "the seed wrote no $dir/config.yaml"
fi
say "store: $(du -sh "$dir" | cut -f1) in $dir"

# The server's stderr goes through a FIFO that this shell reads line by line, so the ready
# line is seen when it is written, not at the next poll. The FIFO is opened read-write here
# first so that the server's open does not block.
fifo="$tmp/stderr"
mkfifo "$fifo"
exec 3<>"$fifo"

times=()
rss=()
anons=()
for ((run = 1; run <= RUNS; run++)); do
	t0=$EPOCHREALTIME
	"$BIN" serve --config "$dir/config.yaml" --data "$dir" \
		--http 127.0.0.1:0 --admin 127.0.0.1:0 --metrics 127.0.0.1:0 \
		--log-format json >/dev/null 2>"$fifo" &
	server_pid=$!
	disown "$server_pid" # no "Killed" job notice
	ready="" last="" deadline=$((SECONDS + 120))
	while [ -z "$ready" ] && [ "$SECONDS" -lt "$deadline" ]; do
		if IFS= read -r -t 1 line <&3; then
			last=$line
			case $line in *'"msg":"ready"'*) ready=$EPOCHREALTIME ;; esac
		elif ! kill -0 "$server_pid" 2>/dev/null; then
			break # exited; its last words, if any, are in the FIFO
		fi
	done
	if [ -z "$ready" ]; then
		while IFS= read -r -t 0.1 line <&3; do last=$line; done
		die "run $run: no ready line within 120 s or the server exited (last line: ${last:-none})"
	fi
	# VmRSS = RssAnon (heap, stacks) + RssFile (mapped files: the bbolt mmap, reclaimable) + RssShmem.
	read -r total anon file < <(awk '/^(VmRSS|RssAnon|RssFile):/ {v[$1] = $2 / 1024}
		END {printf "%.1f %.1f %.1f\n", v["VmRSS:"], v["RssAnon:"], v["RssFile:"]}' "/proc/$server_pid/status")
	ms=$(awk -v a="$t0" -v b="$ready" 'BEGIN {printf "%.0f", (b - a) * 1000}')
	times+=("$ms")
	rss+=("$total")
	anons+=("$anon")
	say "run $run: ready after $ms ms, RSS $total MiB (anon $anon, file $file)"

	kill -TERM "$server_pid"
	for ((i = 0; i < 200; i++)); do # at most 10 s, then SIGKILL; drain the FIFO meanwhile
		kill -0 "$server_pid" 2>/dev/null || break
		[ "$i" -eq 100 ] && kill -KILL "$server_pid" 2>/dev/null
		while IFS= read -r -t 0.05 line <&3; do :; done
	done
	while IFS= read -r -t 0.05 line <&3; do :; done
	server_pid=""
done

median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
		END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "startup to ready, $what, $RUNS runs"
echo "  each run (ms):     ${times[*]}"
echo "  median:            $(median "${times[@]}") ms"
echo "  RSS at ready:      median $(median "${rss[@]}") MiB, of which anon $(median "${anons[@]}") MiB (the rest is mostly the bbolt mmap)"
