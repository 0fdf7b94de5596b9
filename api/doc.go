// Package api is trackline's HTTP surface: the public session API and DNI script that
// customer websites call, and the admin API (bearer token) for operators and customers.
//
// It validates every input at the edge (size, shape, lengths, origins, content types) and
// answers problems as RFC 9457 application/problem+json naming the field that was wrong. It
// never reads, logs or passes on a visitor's IP address or user agent: handlers use only the
// body, the site key and the Origin header; the per-site-key rate limit is kept in memory.
//
// Operations endpoints live here too: /healthz and /readyz (the checks are wired in by main),
// the hot backup of the store (GET /v1/backup) and the runtime log level (/v1/log-level).
//
// Tenancy and access (access.go): the operator token and customers' tokens (kept as hashes by
// package store), a rule per admin route that keeps a customer token to its own customer's
// records (another's answer 404, as if they did not exist), and the audit log of every read,
// export, change or deletion of personal data. The routes that make, list and revoke tokens
// serve every kind of token (customers' API tokens, browser agents' tokens: agents.go) with
// one set of handlers; a tokenKind holds what the kinds differ in.
//
// The data lifecycle (lifecycle.go): GET /v1/export streams a customer's archive (package
// recordings writes it), the monthly usage report, numbers marked for porting and the
// numbers held after their customer was deleted.
//
// Data subjects and erasure (callers.go): a caller's data, found by the number through its
// pseudonym, listed, exported as a zip and erased; a customer erased (its key destroyed
// first). Both erasures end with the store compacted. Recordings are served decrypted
// (recordings.go), with Range requests.
//
// It does not own business rules: leases, attribution and the contract lifecycle are
// package pool's.
package api
