#!/usr/bin/env bash
# Fetches the web app's third-party files from the npm registry (make assets; make build, run,
# check and test run it first). No Node is needed: the tarballs come with curl, each pinned by
# version and by the sha512 integrity the registry publishes for it (dist.integrity), and a
# tarball that does not match its pin fails the build before anything is written.
#
#   app/assets/vendor/     embedded in the binary (app/assets/embed.go), with the licences:
#     htmx.min.js, htmx.LICENSE                         htmx.org  (0BSD)
#     uPlot.iife.min.js, uPlot.min.css, uPlot.LICENSE   uplot     (MIT)
#   app/assets/testdata/   for the tests only, never embedded:
#     axe.min.js, axe-core.LICENSE, axe-core.LICENSE-3RD-PARTY.txt   axe-core (MPL-2.0)
#
# app/assets/vendor/.versions records, per file, the package, version and integrity it came
# from and the file's sha256. A package whose files are all present and match that record is
# skipped without touching the network, so a second run is instant and works offline.
#
# To move a pin: `npm view <name>@<version> dist.integrity` (or the registry's JSON,
# https://registry.npmjs.org/<name>/<version>, field dist.integrity), then change the
# version and the integrity below together.
#
# NPM_REGISTRY overrides the registry (a mirror); the pinned integrities still decide.
set -euo pipefail

cd "$(dirname "$0")/.."

REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
REGISTRY="${REGISTRY%/}"

VENDOR=app/assets/vendor
TESTDATA=app/assets/testdata
MANIFEST=$VENDOR/.versions

# name, version, integrity; then the files: path in the tarball -> destination.
HTMX=(htmx.org 2.0.11 'sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==')
HTMX_FILES=(
	"package/dist/htmx.min.js $VENDOR/htmx.min.js"
	"package/LICENSE $VENDOR/htmx.LICENSE"
)
UPLOT=(uplot 1.6.32 'sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==')
UPLOT_FILES=(
	"package/dist/uPlot.iife.min.js $VENDOR/uPlot.iife.min.js"
	"package/dist/uPlot.min.css $VENDOR/uPlot.min.css"
	"package/LICENSE $VENDOR/uPlot.LICENSE"
)
AXE=(axe-core 4.14.1 'sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==')
AXE_FILES=(
	"package/axe.min.js $TESTDATA/axe.min.js"
	"package/LICENSE $TESTDATA/axe-core.LICENSE"
	"package/LICENSE-3RD-PARTY.txt $TESTDATA/axe-core.LICENSE-3RD-PARTY.txt"
)

say() { printf 'assets: %s\n' "$*"; }
die() {
	printf 'assets: ERROR: %s\n' "$*" >&2
	exit 1
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	else
		shasum -a 256 "$1" | cut -d' ' -f1
	fi
}

# The npm integrity string of a file: "sha512-" and the base64 of the raw digest.
integrity_of() {
	if command -v openssl >/dev/null 2>&1; then
		printf 'sha512-%s' "$(openssl dgst -sha512 -binary <"$1" | base64 | tr -d '\n')"
	elif command -v sha512sum >/dev/null 2>&1 && command -v xxd >/dev/null 2>&1; then
		printf 'sha512-%s' "$(sha512sum "$1" | cut -d' ' -f1 | xxd -r -p | base64 | tr -d '\n')"
	else
		die "need openssl (or sha512sum and xxd) to check the tarballs' integrity"
	fi
}

# up_to_date NAME VERSION INTEGRITY FILES...: every file is present, non-empty and recorded in
# the manifest for exactly this pin with its current sha256.
up_to_date() {
	local name=$1 version=$2 integrity=$3
	shift 3
	[ -f "$MANIFEST" ] || return 1
	local spec dest want
	for spec in "$@"; do
		dest=${spec#* }
		[ -s "$dest" ] || return 1
		want=$(awk -v n="$name" -v v="$version" -v i="$integrity" -v p="$dest" \
			'($1 " " $2 " " $3 " " $5) == (n " " v " " i " " p) { print $4 }' "$MANIFEST")
		[ -n "$want" ] && [ "$want" = "$(sha256_of "$dest")" ] || return 1
	done
}

# fetch NAME VERSION INTEGRITY FILES...: download, verify, extract, install, record.
fetch() {
	local name=$1 version=$2 integrity=$3
	shift 3
	local url="$REGISTRY/$name/-/${name##*/}-$version.tgz"
	local tgz="$work/${name##*/}-$version.tgz"
	command -v curl >/dev/null 2>&1 || die "$name $version is missing or stale and curl is not installed (apt-get install curl)"
	say "$name $version: fetching $url"
	curl -fsSL --retry 3 --connect-timeout 20 -o "$tgz" "$url" ||
		die "$name $version: could not download $url (offline? the files are fetched once, then kept)"
	local got
	got=$(integrity_of "$tgz")
	if [ "$got" != "$integrity" ]; then
		die "$name $version: CHECKSUM MISMATCH for $url
  pinned: $integrity
  got:    $got
Nothing was written. If the pin was moved on purpose, take the integrity from
\`npm view $name@$version dist.integrity\`; otherwise do not trust this download."
	fi
	say "$name $version: integrity ok ($integrity)"

	local spec src dest x="$work/${name##*/}"
	local srcs=()
	for spec in "$@"; do srcs+=("${spec%% *}"); done
	mkdir -p "$x"
	tar -xzf "$tgz" -C "$x" "${srcs[@]}" || die "$name $version: the tarball lacks one of: ${srcs[*]}"

	# Install each file atomically, then replace this package's lines in the manifest.
	local lines=()
	for spec in "$@"; do
		src=${spec%% *}
		dest=${spec#* }
		[ -s "$x/$src" ] || die "$name $version: $src is empty in the tarball"
		mkdir -p "$(dirname "$dest")"
		cp "$x/$src" "$dest.tmp.$$"
		chmod 0644 "$dest.tmp.$$"
		mv -f "$dest.tmp.$$" "$dest"
		lines+=("$name $version $integrity $(sha256_of "$dest") $dest")
		say "$name $version: $dest"
	done
	{
		echo '# scripts/assets.sh: package version integrity sha256 file. Generated; do not edit.'
		if [ -f "$MANIFEST" ]; then awk -v n="$name" '!/^#/ && $1 != n' "$MANIFEST"; fi
		printf '%s\n' "${lines[@]}"
	} >"$MANIFEST.tmp.$$"
	mv -f "$MANIFEST.tmp.$$" "$MANIFEST"
}

mkdir -p "$VENDOR" "$TESTDATA"

# One run at a time in this tree (make test in parallel shells): lock the vendor directory.
if command -v flock >/dev/null 2>&1; then
	exec 9<"$VENDOR"
	flock 9
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/trackline-assets.XXXXXX")
trap 'rm -rf "$work"' EXIT

for pkg in HTMX UPLOT AXE; do
	declare -n pin=$pkg files=${pkg}_FILES
	if up_to_date "${pin[@]}" "${files[@]}"; then
		say "${pin[0]} ${pin[1]}: present, checksums match"
	else
		fetch "${pin[@]}" "${files[@]}"
	fi
	unset -n pin files
done
