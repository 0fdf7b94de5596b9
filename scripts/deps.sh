#!/usr/bin/env bash
# Installs what the tests and benchmarks need, and only what is missing. Idempotent.
#
#   scripts/deps.sh          system tools (apt) and Go modules
#   scripts/deps.sh lint     staticcheck, pinned, into $(go env GOPATH)/bin
#   scripts/deps.sh weed     SeaweedFS's weed, pinned, into $(go env GOPATH)/bin: the
#                            S3-compatible object store of the recordings tests
#                            (internal/weedtest). Built from its Go module outside trackline's
#                            go.mod, once: ~400 s of CPU (4 to 9 min on 2 cores, by their load).
#                            The default run starts that build in the background, holding
#                            weed-<version>.lock, and returns: the checks and the other packages'
#                            tests run meanwhile, and the tests that need weed wait for the lock.
#
# System tools, by the command each package provides:
#   chromium    chromium   headless browser for the DNI script tests
#   sip-tester  sipp       SIP peers for the call tests
#   socat       socat      carries sipp's TCP over TLS in the SIP-over-TLS tests: Debian's sipp
#                          is built without OpenSSL (`sipp -t l1` refuses), see e2e/secure_test.go
#   wrk         wrk        HTTP load generator (make bench)
#   gcc         gcc        cgo, needed by go test -race
#   curl, jq    curl, jq   used by the bench scripts
#   prometheus  promtool   checks and unit-tests configs/prometheus; the package also brings a
#                          Prometheus server, not needed: on a host with systemd its service
#                          starts on :9090 (trackline's default metrics port): systemctl disable --now prometheus
#   kamailio    kamailio   the SIP front of the cluster test (configs/kamailio; its dispatcher
#                          module is in the package). Installed in /usr/sbin, which a user's PATH
#                          may lack: looked for there too. On a host with systemd the package
#                          starts its own service on :5060 (trackline's default SIP port), not
#                          needed by the tests: systemctl disable --now kamailio
#   postgresql  initdb     PostgreSQL 15 for the tests of the PostgreSQL store (internal/pgtest
#                          runs its own server in a temporary directory; its programs are in
#                          /usr/lib/postgresql/15/bin, off PATH). The package's own cluster and
#                          service are not needed: on a host with systemd,
#                          systemctl disable --now postgresql
#   haproxy     haproxy    the HTTP front of the cluster test (configs/haproxy). In /usr/sbin
#                          too; on a host with systemd the package starts its own service with
#                          Debian's config (no trackline ports), not needed by the tests
set -euo pipefail

# github.com/seaweedfs/seaweedfs; internal/weedtest.Version names the same.
WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools; v0.8.x is the first line built for Go 1.26

cd "$(dirname "$0")/.."

say() { printf 'deps: %s\n' "$*"; }

run_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		say "need root to run: $*" >&2
		return 1
	fi
}

system_deps() {
	local -A provides=(
		[chromium]=chromium
		[sip-tester]=sipp
		[socat]=socat
		[wrk]=wrk
		[gcc]=gcc
		[curl]=curl
		[jq]=jq
		[prometheus]=promtool
		[kamailio]=kamailio
		[haproxy]=haproxy
		[postgresql]=/usr/lib/postgresql/15/bin/initdb
	)
	local pkg missing=()
	for pkg in chromium sip-tester socat wrk gcc curl jq prometheus kamailio haproxy postgresql; do
		if command -v "${provides[$pkg]}" >/dev/null 2>&1; then
			say "$pkg: present ($(command -v "${provides[$pkg]}"))"
		elif [ -x "/usr/sbin/${provides[$pkg]}" ]; then
			say "$pkg: present (/usr/sbin/${provides[$pkg]})"
		else
			missing+=("$pkg")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi
	# Wait for a dpkg/apt lock held by another process instead of failing.
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
	say "missing: ${missing[*]}"
	say "apt-get update"
	run_root "${apt[@]}" update
	say "apt-get install -y --no-install-recommends ${missing[*]}"
	run_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
}

go_deps() {
	say "go mod download"
	go mod download
}

lint_deps() {
	local bin want have
	bin="$(go env GOPATH)/bin"
	want="$STATICCHECK_VERSION"
	have=""
	if [ -x "$bin/staticcheck" ]; then
		have=$("$bin/staticcheck" -version 2>/dev/null || true)
	fi
	case "$have" in
	*"(${want#v})"*) # staticcheck -version: "staticcheck 2026.2.2 (0.8.2)"
		say "staticcheck $want: present ($bin/staticcheck)"
		return 0
		;;
	esac
	say "go install honnef.co/go/tools/cmd/staticcheck@$want into $bin"
	GOBIN="$bin" go install "honnef.co/go/tools/cmd/staticcheck@$want"
}

# weed_deps builds weed-$WEED_VERSION unless present. `go install module@version` refuses
# SeaweedFS (its go.mod has replace directives), so the module is downloaded outside any
# module and built as its own main module, with its own go.sum.
weed_deps() {
	local bin dir tmp
	bin="$(go env GOPATH)/bin/weed-$WEED_VERSION"
	if [ -x "$bin" ]; then
		say "weed $WEED_VERSION: present ($bin)"
		return 0
	fi
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$WEED_VERSION" | jq -r .Dir)
	rmdir "$tmp"
	say "building weed $WEED_VERSION from $dir into $bin (minutes)"
	mkdir -p "$(dirname "$bin")"
	(cd "$dir" && GOFLAGS=-buildvcs=false go build -o "$bin.tmp" ./weed)
	mv "$bin.tmp" "$bin"
}

# weed_deps_background starts weed_deps in the background unless weed is present or a build
# runs: the lock is taken here, before this returns, and passed on to the build (an flock
# belongs to the open file, which the build inherits), so a test that starts right after sees
# it held. The build's output goes to weed-<version>.log beside the binary.
weed_deps_background() {
	local bin
	bin="$(go env GOPATH)/bin/weed-$WEED_VERSION"
	if [ -x "$bin" ]; then
		say "weed $WEED_VERSION: present ($bin)"
		return 0
	fi
	mkdir -p "$(dirname "$bin")"
	exec 9>"$bin.lock"
	if ! flock -n 9; then
		say "weed $WEED_VERSION: a build is running (log: $bin.log)"
		exec 9>&-
		return 0
	fi
	say "weed $WEED_VERSION: building in the background (log: $bin.log); the tests that need it wait"
	nohup bash scripts/deps.sh weed >"$bin.log" 2>&1 </dev/null &
	exec 9>&-
}

case "${1:-}" in
"")
	system_deps
	go_deps
	weed_deps_background
	;;
weed)
	weed_deps
	;;
lint)
	go_deps
	lint_deps
	;;
*)
	echo "usage: $0 [lint|weed]" >&2
	exit 2
	;;
esac
