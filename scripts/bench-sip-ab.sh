#!/usr/bin/env bash
# `make bench-sip`: the SIP benchmark of issue 21 for this build, against a base build in the
# same round (A/B, each step run for one build and then the other, since this machine's speed
# drifts within minutes): a ladder of direct calls and one of recorded calls (anchored,
# recording on, no prompt), then an overload run of each kind at twice the knee the ladder
# found, then the recorded calls' sustained run. Each run is scripts/bench-sip.sh with a fresh
# switch; its tables are parsed here. The result is appended to docs/benchmarks.md as a
# section with the commands, the date and the builds.
#
# Environment (defaults in brackets):
#   BASE               git revision of the base build; empty: this build alone [HEAD~1]
#   DIRECT_RATES       the direct ladder's rates ["1000 2000"]
#   RECORDED_RATES     the recorded ladder's rates ["500 1000"]
#   CALLS              calls per ladder step (at least 4 s of each rate) [4000]
#   KNEE_DIRECT        the direct knee; empty: the highest ladder rate of this build with no
#                      failed call and setup p99 under 250 ms [empty]
#   KNEE_RECORDED      the same for recorded calls [empty]
#   OVERLOAD_SECONDS   length of the overload runs; 0 skips them [60]
#   SUSTAIN_RATE       rate of the recorded calls' sustained run [1000]
#   SUSTAIN_SECONDS    its length; 0 skips it [60]
#   DOCS               the file the section is appended to; empty: printed only [docs/benchmarks.md]
# Whatever else scripts/bench-sip.sh reads (BUFF, RTP_PORTS, ...) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE-HEAD~1}
DIRECT_RATES=${DIRECT_RATES:-"1000 2000"}
RECORDED_RATES=${RECORDED_RATES:-"500 1000"}
CALLS=${CALLS:-4000}
KNEE_DIRECT=${KNEE_DIRECT:-}
KNEE_RECORDED=${KNEE_RECORDED:-}
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-60}
SUSTAIN_RATE=${SUSTAIN_RATE:-1000}
SUSTAIN_SECONDS=${SUSTAIN_SECONDS:-60}
DOCS=${DOCS-docs/benchmarks.md}

die() {
	echo "bench-sip-ab: $*" >&2
	exit 1
}
say() { echo "bench-sip-ab: $*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trackline-bench-ab.XXXXXX")
worktree=""
cleanup() {
	[ -z "$worktree" ] || git worktree remove --force "$worktree" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# The builds: "new" is the working tree as it is; "base" a clean checkout of BASE.
new_rev="$(git describe --always --dirty 2>/dev/null || echo unknown)"
go build -o "$tmp/new" ./cmd/trackline
builds=(new)
declare -A bins=([new]="$tmp/new") revs=([new]="$new_rev")
if [ -n "$BASE" ]; then
	base_rev=$(git rev-parse --short "$BASE") || die "no revision $BASE"
	worktree="$tmp/base-tree"
	git worktree add --detach "$worktree" "$base_rev" >/dev/null 2>&1 || die "git worktree add $base_rev failed"
	(cd "$worktree" && go build -o "$tmp/base" ./cmd/trackline) || die "building $base_rev failed"
	builds=(base new)
	bins[base]="$tmp/base"
	revs[base]="$base_rev"
fi

# run NAME BUILD ENV...: one scripts/bench-sip.sh run of BUILD; its output in $tmp/NAME-BUILD.out.
run() {
	local name=$1 build=$2
	shift 2
	say "$name: ${revs[$build]} ($*)"
	env "$@" BIN="${bins[$build]}" bash scripts/bench-sip.sh >"$tmp/$name-$build.out" 2>"$tmp/$name-$build.err" ||
		{ tail -5 "$tmp/$name-$build.err" >&2; die "$name of $build failed"; }
}

# rows FILE KIND: the table rows of one bench-sip.sh output whose first cell starts with KIND.
rows() { grep -E "^\| $2" "$1" || true; }

# cell ROW N: the Nth cell of a table row (1-based), trimmed.
cell() { awk -F'|' -v n="$(($2 + 1))" '{gsub(/^ +| +$/, "", $n); print $n}' <<<"$1"; }

# knee FILE: the highest ladder rate with no failed call and setup p99 under 250 ms.
knee() {
	rows "$1" ladder | awk -F'|' '{
		rate = $3 + 0; split($6, f, " "); p99 = $11 + 0
		if (f[1] + 0 == 0 && p99 < 250 && rate > k) k = rate
	} END {print k + 0}'
}

load() { cut -d' ' -f1 /proc/loadavg; }
started=$(date -u '+%Y-%m-%d %H:%M')
declare -A loads

# The ladders, one build after the other for each mode.
for mode in direct recorded; do
	rates=$DIRECT_RATES
	[ "$mode" = recorded ] && rates=$RECORDED_RATES
	for b in "${builds[@]}"; do
		loads[ladder-$mode-$b]=$(load)
		run "ladder-$mode" "$b" MODE="$mode" RATES="$rates" CALLS="$CALLS" SUSTAIN_SECONDS=0
	done
done
[ -n "$KNEE_DIRECT" ] || KNEE_DIRECT=$(knee "$tmp/ladder-direct-new.out")
[ -n "$KNEE_RECORDED" ] || KNEE_RECORDED=$(knee "$tmp/ladder-recorded-new.out")

if [ "$OVERLOAD_SECONDS" -gt 0 ]; then
	for mode in direct recorded; do
		k=$KNEE_DIRECT
		[ "$mode" = recorded ] && k=$KNEE_RECORDED
		[ "$k" -gt 0 ] || { say "no clean $mode ladder step: no $mode overload run"; continue; }
		for b in "${builds[@]}"; do
			loads[overload-$mode-$b]=$(load)
			run "overload-$mode" "$b" MODE="$mode" RATES=" " SUSTAIN_SECONDS=0 \
				OVERLOAD_RATE=$((2 * k)) OVERLOAD_SECONDS="$OVERLOAD_SECONDS"
		done
	done
fi
if [ "$SUSTAIN_SECONDS" -gt 0 ]; then
	for b in "${builds[@]}"; do
		loads[sustained-$b]=$(load)
		run sustained "$b" MODE=recorded RATES=" " SUSTAIN_RATE="$SUSTAIN_RATE" SUSTAIN_SECONDS="$SUSTAIN_SECONDS"
	done
fi

# The section.
out="$tmp/section.md"
{
	echo
	echo "### make bench-sip, $started UTC: ${revs[new]}${BASE:+ against ${revs[base]}}"
	echo
	echo "Written by \`scripts/bench-sip-ab.sh\` (\`make bench-sip${BASE:+ BASE=$BASE}\`) on $(nproc) cores shared by the switch"
	echo "and both sipps; each line one run of a fresh switch, the builds interleaved step by step"
	echo "(load average at each run's start in brackets). Runs of scripts/bench-sip.sh with \`BIN\`"
	echo "each build:"
	echo
	echo "    MODE=direct RATES=\"$DIRECT_RATES\" CALLS=$CALLS SUSTAIN_SECONDS=0 bash scripts/bench-sip.sh"
	echo "    MODE=recorded RATES=\"$RECORDED_RATES\" CALLS=$CALLS SUSTAIN_SECONDS=0 bash scripts/bench-sip.sh"
	if [ "$OVERLOAD_SECONDS" -gt 0 ]; then
		echo "    MODE=direct RATES=\" \" SUSTAIN_SECONDS=0 OVERLOAD_RATE=$((2 * KNEE_DIRECT)) OVERLOAD_SECONDS=$OVERLOAD_SECONDS bash scripts/bench-sip.sh"
		echo "    MODE=recorded RATES=\" \" SUSTAIN_SECONDS=0 OVERLOAD_RATE=$((2 * KNEE_RECORDED)) OVERLOAD_SECONDS=$OVERLOAD_SECONDS bash scripts/bench-sip.sh"
	fi
	[ "$SUSTAIN_SECONDS" -gt 0 ] &&
		echo "    MODE=recorded RATES=\" \" SUSTAIN_RATE=$SUSTAIN_RATE SUSTAIN_SECONDS=$SUSTAIN_SECONDS bash scripts/bench-sip.sh"
	echo
	if grep -q 'data on a fresh ext4' "$tmp"/*-new.out 2>/dev/null; then
		echo "Each run's data directory was on a fresh ext4 file system (bench-sip.sh's \`FS=fresh\`)."
		echo
	fi
	echo "Ladders (knee: the highest rate with no failed call and setup p99 under 250 ms; direct $KNEE_DIRECT, recorded $KNEE_RECORDED CPS):"
	echo
	echo "| load | build | direct: failed, setup p99 ms, CPU ms per call, peak RSS MiB | recorded: failed, setup p99 ms, CPU ms per call, peak RSS MiB |"
	echo "| --- | --- | --- | --- |"
	for rate in $(printf '%s\n' $DIRECT_RATES $RECORDED_RATES | sort -n -u); do
		for b in "${builds[@]}"; do
			line="| $rate CPS | ${revs[$b]} |"
			for mode in direct recorded; do
				r=$(rows "$tmp/ladder-$mode-$b.out" ladder | awk -F'|' -v r="$rate" '$3 + 0 == r' | head -1)
				if [ -n "$r" ]; then
					line="$line $(cell "$r" 5), $(cell "$r" 10), $(cell "$r" 11), $(cell "$r" 13) ($(printf '%s' "${loads[ladder-$mode-$b]}")) |"
				else
					line="$line |"
				fi
			done
			echo "$line"
		done
	done
	if [ "$OVERLOAD_SECONDS" -gt 0 ]; then
		echo
		echo "Overload at twice the knee for $OVERLOAD_SECONDS s (goals: goodput at least 90 % of the knee, 503 within 50 ms, admitted setups' p99 under 250 ms):"
		echo
		echo "| mode, offered | build | goodput | failed | 503s | to 503 ms p50 / p99 / max | shed by reason | retrans | admitted setup p99 ms | CPU ms per admitted call | peak RSS MiB | UDP drops |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for mode in direct recorded; do
			for b in "${builds[@]}"; do
				[ -f "$tmp/overload-$mode-$b.out" ] || continue
				r=$(rows "$tmp/overload-$mode-$b.out" overload | tail -1)
				echo "| $mode, $(cell "$r" 2) ($(printf '%s' "${loads[overload-$mode-$b]}")) | ${revs[$b]} | $(cell "$r" 4) | $(cell "$r" 6) | $(cell "$r" 7) | $(cell "$r" 8) | $(cell "$r" 9) | $(cell "$r" 10) | $(cell "$r" 11) | $(cell "$r" 12) | $(cell "$r" 13) | $(cell "$r" 14) |"
			done
		done
	fi
	if [ "$SUSTAIN_SECONDS" -gt 0 ]; then
		echo
		echo "Recorded calls sustained at $SUSTAIN_RATE CPS for $SUSTAIN_SECONDS s (goals: under 0.1 % failed, setup p99 under 100 ms, at most 1.0 ms of CPU per call, RSS under 512 MB):"
		echo
		echo "| build | CPS made | failed | setup p50 / p99 ms | CPU ms per call | peak RSS MiB | retrans |"
		echo "| --- | --- | --- | --- | --- | --- | --- |"
		for b in "${builds[@]}"; do
			r=$(rows "$tmp/sustained-$b.out" sustained | head -1)
			echo "| ${revs[$b]} ($(printf '%s' "${loads[sustained-$b]}")) | $(cell "$r" 3) | $(cell "$r" 5) | $(cell "$r" 9) / $(cell "$r" 10) | $(cell "$r" 11) | $(cell "$r" 13) | $(cell "$r" 8) |"
		done
	fi
} >"$out"
cat "$out"
if [ -n "$DOCS" ]; then
	cat "$out" >>"$DOCS"
	say "appended to $DOCS"
fi
