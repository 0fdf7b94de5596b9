// Package app is the customer's web app: the pages a marketer, a shop owner or an operator
// logs in to, served by `trackline serve` on listen.app behind the operator's TLS proxy.
//
// It owns the web app's accounts in use (login with argon2id passwords and optional TOTP,
// invitations, server-side sessions in an HttpOnly cookie, CSRF tokens, a per-account login
// limiter kept in memory only) and its pages: the overview (from the store's daily rollups,
// never a scan of calls), calls with their attribution in words and recordings, the live
// view (server-sent events), settings, privacy and the operator's customer list. Pages are
// server-rendered html/template with htmx for partial updates and uPlot for charts, both
// embedded (package app/assets); no page runs inline script, so the Content-Security-Policy
// allows only the app's own origin.
//
// What it does not own: the records (package store), the customers' rules and validation
// (package pool), recordings on disk (package recordings) and the data subjects' export and
// erasure (package privacy), which the admin API shares.
//
// Access: a customer's user reaches only URLs under /c/<its customer id>/; any other
// customer's URL, and any record of another customer, answers exactly the 404 of a missing
// record. Operators reach every customer. Every page that reads, exports, changes or
// deletes personal data writes the audit log with the user as actor ("user:" and its id).
package app
