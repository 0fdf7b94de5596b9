# trackline: build, run, test and benchmark. `make help` lists the targets.

GO      ?= go
BIN     := bin/trackline
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Installed by `scripts/deps.sh lint` (version pinned there), run by full path.
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: help assets build run call deps check fmt-check test bench bench-startup bench-app bench-sip bench-media bench-floor bench-compact fmt vet lint clean

help:
	@echo 'assets         fetch htmx, uPlot (embedded) and axe-core (tests) from npm, pinned: scripts/assets.sh'
	@echo 'build          assets, go build -o $(BIN) ./cmd/trackline (version $(VERSION))'
	@echo 'run            build, then serve the embedded default config (data under ./data)'
	@echo 'call           with `make run` running: one sipp call through it, then its call record'
	@echo 'deps           install system tools (chromium, sipp, promtool, wrk) if missing; go mod download'
	@echo 'check          assets, gofmt check, go vet, staticcheck (pinned): what CI runs before the tests'
	@echo 'test           deps, assets, check, go test -race (what .ci/run runs)'
	@echo 'bench          deps, load benchmark of POST /v1/sessions, Go benchmarks'
	@echo 'bench-startup  time from exec to ready with 1M sessions in the store'
	@echo 'bench-app      p50/p95/p99 of each web app page with 1M calls and 5M sessions in the store'
	@echo 'bench-sip      issue 21'"'"'s SIP benchmark against BASE (default HEAD~1), interleaved: direct and recorded'
	@echo '               ladders, overload at twice the knee, recorded calls sustained; appended to docs/benchmarks.md'
	@echo '               (scripts/bench-sip-ab.sh; one configurable run: scripts/bench-sip.sh)'
	@echo 'bench-media    200/500/1,000 concurrent anchored, recorded calls: loss, CPU, latency, disk'
	@echo 'bench-floor    one loopback send + recv, then the same RTP load through bare C relays (epoll, io_uring): the machine'"'"'s floor'
	@echo 'bench-compact  store compaction (erasure) on 1M sessions: copy time, write pause'
	@echo 'fmt vet lint   gofmt -w, go vet, staticcheck'
	@echo 'fmt-check      fail listing the Go files gofmt would change'
	@echo 'clean          remove bin/'

# The web app's third-party files, embedded by app/assets; quick and offline once fetched.
assets:
	bash scripts/assets.sh

build: assets
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/trackline

run: build
	./$(BIN) serve

call: build
	bash scripts/call.sh

deps:
	bash scripts/deps.sh

# check before the tests, so that a developer's `make test` fails where CI's would. The
# three-node cluster tests on PostgreSQL (build tag cluster, e2e/cluster_pg_test.go, ~3 min)
# run alone after the others: their bounds (a killed node out within the ping interval)
# are timed.
test: deps assets check
	$(GO) test -race -count=1 -timeout 12m ./...
	TRACKLINE_TEST_STORE=postgres $(GO) test -race -count=1 -timeout 8m -run '$(PG_STORE_TESTS)' ./store/
	TRACKLINE_TEST_STORE=postgres $(GO) test -race -count=1 -timeout 5m ./app/ ./integrations/ ./integrations/googleads/ ./internal/storetest/ ./accounts/ ./provision/
	TRACKLINE_TEST_STORE=postgres $(GO) test -race -count=1 -timeout 5m -run '$(PG_API_TESTS)' ./api/
	$(GO) test -race -count=1 -tags cluster -timeout 8m -run '^TestClusterPG' ./e2e/

# The store's tests a second time on PostgreSQL (TRACKLINE_TEST_STORE=postgres): all of them.
# Those about bbolt's file itself (its compaction, its backup, the conversion of an earlier
# build's file) skip there with t.Skip naming what PostgreSQL has instead and its test
# (store/pg_main_test.go, skipOnPostgres); every other test opens its store on PostgreSQL.
PG_STORE_TESTS := .

# The API's tests on PostgreSQL: all of them. Their stores are opened by internal/storetest,
# which honours TRACKLINE_TEST_STORE, but for ops_test.go's, about bbolt's file (its online
# backup through the admin API), which open bbolt themselves.
PG_API_TESTS := .

bench: deps
	bash scripts/bench-sessions.sh
	$(GO) test -run='^$$' -bench=. -benchmem ./...

bench-startup:
	bash scripts/bench-startup.sh

bench-app: assets
	bash scripts/bench-app.sh

bench-sip: build
	bash scripts/bench-sip-ab.sh

bench-media: build
	bash scripts/bench-media.sh

bench-floor:
	bash scripts/bench-floor.sh

bench-compact:
	bash scripts/bench-compact.sh

check: assets fmt-check vet lint

fmt:
	git ls-files -z '*.go' | xargs -0 -r gofmt -l -w

fmt-check:
	bash scripts/fmt-check.sh

vet:
	$(GO) vet ./...
	$(GO) vet -tags cluster ./e2e/

lint:
	bash scripts/deps.sh lint
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags cluster ./e2e/

clean:
	rm -rf bin
