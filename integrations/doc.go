// Package integrations delivers what trackline hands to other systems: the webhooks of
// issue 19, from the store's outbox (package store: outbox.go, events.go, webhooks.go).
//
// What it owns: the delivery workers (Webhooks), the signature (Standard Webhooks: the
// webhook-id, webhook-timestamp and webhook-signature headers, an HMAC-SHA256 of
// "id.timestamp.body" with the endpoint's secret), the retry schedule (exponential backoff
// with full jitter, for up to three days), the per-endpoint concurrency limit and circuit
// breaker, and the guard against requests to addresses that are not the internet's
// (loopback, private, link-local, CGNAT, metadata, ...), checked when a connection is made, so
// that a name that resolves to such an address (DNS rebinding) is refused too.
//
// What it does not own: which events exist, their payloads, and when they are written (package
// store writes them in the transaction of the record that causes them); the endpoints' API
// (package api); Google Ads offline conversions are package integrations/googleads (docs/googleads.md).
//
// Delivery is at least once: an attempt's outcome is recorded after the attempt, so a stop
// or crash in between sends the message again, with the same webhook-id, after the restart.
// Receivers deduplicate by webhook-id (docs/webhooks.md). The messages of one call reach an
// endpoint in order (the store holds a later one back until the earlier one is settled);
// other messages may be delivered concurrently, in any order.
//
// Lifetime: New, then Run(ctx) in a goroutine of its own until ctx ends or Close; Close stops
// it (attempts in flight are cancelled and not recorded: they are made again after a restart)
// and waits for its goroutines. Run's goroutines: the dispatcher (Run's own), Config.Workers
// workers (they exit when the dispatcher closes their queue) and the recorder of outcomes
// (it exits when the workers are done). Stop it before the store closes.
package integrations
