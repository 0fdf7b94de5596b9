#!/usr/bin/env bash
# Fails, listing them, when Go files are not gofmt-formatted (make check, hence make test and
# CI). The files are the repository's: tracked and untracked ones that .gitignore does not
# ignore, and that exist (a file deleted but not yet staged is skipped). `make fmt` fixes them.
set -euo pipefail
cd "$(dirname "$0")/.."

files=()
while IFS= read -r -d '' f; do
	if [ -f "$f" ]; then files+=("$f"); fi
done < <(git ls-files -z --cached --others --exclude-standard -- '*.go')
if [ ${#files[@]} -eq 0 ]; then
	echo "fmt-check: no Go files found (not a git checkout?)" >&2
	exit 1
fi
# The gofmt of the toolchain that builds the module (go.mod pins its version).
gofmt="$(go env GOROOT)/bin/gofmt"
unformatted=$("$gofmt" -l "${files[@]}")
if [ -n "$unformatted" ]; then
	echo "gofmt: these files are not formatted (run make fmt):" >&2
	sed 's/^/  /' <<<"$unformatted" >&2
	exit 1
fi
echo "gofmt: ${#files[@]} files formatted"
