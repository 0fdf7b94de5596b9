#!/usr/bin/env bash
# Compaction benchmark: how long Compact copies a realistic store, how long it holds writes,
# and the slowest write a caller saw meanwhile (BenchmarkCompact in store/compact_test.go),
# on a store seeded by cmd/trackline-seed.
#
# Environment (defaults in brackets):
#   RUNS      compactions, each of a fresh copy of the seeded store [3]
#   SESSIONS  sessions to seed [1000000]
#   NUMBERS   pool numbers to seed [10000]
#   SEED_DIR  reuse this seeded directory if it holds trackline.db, else seed into it
#             [a temp dir, removed at exit]
#
# The seeded file stays in the page cache between runs (a warm cache, as on a switch that
# serves); the copy is written to the temp dir of `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SESSIONS=${SESSIONS:-1000000}
NUMBERS=${NUMBERS:-10000}

say() { printf 'bench-compact: %s\n' "$*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-compact.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dir=${SEED_DIR:-$tmp/seed}
if [ ! -f "$dir/trackline.db" ]; then
	say "seeding $SESSIONS sessions into $dir"
	go run ./cmd/trackline-seed --data "$dir" --sessions "$SESSIONS" --numbers "$NUMBERS"
fi
say "store $(du -h "$dir/trackline.db" | cut -f1)"
TRACKLINE_BENCH_STORE="$dir/trackline.db" go test ./store -run '^$' -bench '^BenchmarkCompact$' \
	-benchtime 1x -count "$RUNS" -timeout 30m
