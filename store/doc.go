// Package store is trackline's persistence: one bbolt file with typed records for customers,
// channels, numbers, sessions, assignments, per-customer counters and (for the call and media
// layers) calls and recordings; and the access records: customers' API tokens (as hashes)
// and the append-only audit log (access.go).
//
// The data lifecycle (lifecycle.go): usage counters per customer and month, counted as
// records are written; PurgeCustomer, which deletes every record of a customer in bounded
// transactions (its recording files are package recordings': RemoveCustomer); the expiry of
// sessions that never led to a call; deleting a released number; and the audit log's
// retention (PruneAudit).
//
// It owns the file layout (buckets, key encodings, the schema version) and the write path. It
// does not know what a lease means or how a channel is classified: that is package pool.
//
// Write path. Every change goes through one committer goroutine that runs all writes queued
// while the previous commit was in flight in a single bbolt transaction (group commit), so many
// requests share one fsync. This is the coalescing bbolt's DB.Batch offers, without its fixed
// MaxBatchDelay: under light load a write commits at once, under heavy load batches grow by
// themselves. Write returns only after the transaction is on disk, so an answered request is
// durable. A write function must not keep references to the transaction.
//
// Keys are big-endian sortable: assignments are keyed number|from|session so that the most
// recent assignments of a number are a reverse cursor walk away; sessions are keyed by their
// time-ordered id, so inserts append at the end of the B+tree.
//
// Writes nobody waits for (audit entries of reads, DB.Audit) are queued with the others and
// share their commit: they add no fsync, and are durable once the next commit lands.
//
// Backup copies the whole file in one read transaction while writes go on (hot backup);
// BackupFile and Verify open a file read-only, for a stopped switch and for checking a copy.
//
// Caveats (bbolt): the file never shrinks (compact after mass deletion); long read
// transactions block page reuse, so read closures copy values out and return quickly.
package store
