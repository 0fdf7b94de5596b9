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
// It does not own business rules: leases and attribution are package pool's.
package api
