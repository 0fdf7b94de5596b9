// Package e2e tests the whole trackline binary from the outside, as its users
// meet it: the binary is built once, started with a test config on 127.0.0.1:0
// listeners and a fresh data directory, and driven by real peers (an HTTP
// client, headless Chromium loading a page with the DNI script).
//
// What it owns: the harness that builds, starts, stops, kills and restarts the
// binary and reads its JSON logs; the browser tests of the DNI snippet
// (api/web/script.js); the privacy tests (no visitor IP or user agent in the
// data directory or the logs, bad input refused with problem+json and nothing
// stored); the durability test (every answered session survives SIGKILL); the
// call tests (sip_test.go), where sipp plays the SIP trunk and the business
// lines with the scenarios in testdata/sipp, and the call records are read back
// through GET /v1/calls; the hostile-input test of the SIP listener; the operations tests
// (ops_test.go, ops_metrics_test.go): every metric the Grafana dashboard and the alert rules
// query is on the binary's /metrics, a hot backup taken under a sipp load restores, /readyz
// turns 503 when the drain begins, the log level changes at runtime; the upgrade test
// (upgrade_test.go): plain recordings of a build before encryption at rest are encrypted
// at start and served as before.
//
// What it does not own: unit tests of the packages; it only uses the contract
// in docs/api.md (flags, config YAML, HTTP endpoints, cookies, the SIP
// behaviour table). The one exception is the upgrade test, which writes the records an
// earlier build left into the stopped binary's store with package store.
//
// Caveats: the browser tests need Debian's /usr/bin/chromium and the call tests
// sipp (Debian's sip-tester); they fail, not skip, without them (`make deps`
// installs both). Every sipp runs one call under a -timeout and is killed by PID
// when its test ends; TestSIPScenarios runs the scenarios against each other,
// without the switch, so a call test failure points at the switch.
// TRACKLINE_E2E_BIN runs the tests against a binary built elsewhere instead of
// building ./cmd/trackline. When the tests run with -race the binary is built
// with -race too, and a data race it reports fails the test.
package e2e
