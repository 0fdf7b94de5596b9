// Package store is trackline's persistence: one bbolt file with typed records for customers,
// channels, numbers, sessions, assignments, per-customer counters and (for the call and media
// layers) calls and recordings; and the access records: tokens (as hashes), of a kind each
// (customers' API tokens, browser agents' tokens), and the append-only audit log (access.go).
//
// The data lifecycle (lifecycle.go): usage counters per customer and month, counted as
// records are written; PurgeCustomer, which deletes every record of a customer in bounded
// transactions (its recording files are package recordings': RemoveCustomer); the expiry of
// sessions that never led to a call (with their assignments); deleting a released number;
// and the audit log's retention (PruneAudit).
//
// It owns the file layout (buckets, key encodings, the schema version) and the write path. It
// does not know what a lease means or how a channel is classified: that is package pool.
//
// Write path. Every change goes through one committer goroutine that runs all writes queued
// while the previous commit was in flight in a single bbolt transaction (group commit), so many
// requests share one fsync. This is the coalescing bbolt's DB.Batch offers, without its fixed
// MaxBatchDelay: under light load a write commits at once, under heavy load batches grow by
// themselves. Before a commit the committer yields to the goroutines that are ready, so that
// under load the requests the last commit woke answer and the next ones join the batch.
// Write returns only after the transaction is on disk, so an answered request is durable. A write function must not keep references to the transaction.
//
// Keys are big-endian sortable, and what a new session writes appends: sessions are keyed by
// their time-ordered id, and assignments by customer|from|number|session (assignments.go), so
// a batch of new sessions dirties the last pages of a few B+trees, not a page per number. A
// record of an assignment is renewed for at most AssignmentSpan, so the assignments that may
// cover a moment are those that began in a bounded window before it; the view by number is
// package pool's, in memory. Schema 1 files, which kept assignments by number, are converted
// by Open.
//
// Writes nobody waits for (audit entries of reads, DB.Audit) are queued with the others and
// share their commit: they add no fsync, and are durable once the next commit lands.
//
// Backup copies the whole file in one read transaction while writes go on (hot backup);
// BackupFile and Verify open a file read-only, for a stopped switch and for checking a copy.
//
// Callers (callers.go): calls are indexed by their caller's pseudonym, a keyed hash made by
// the call layer (package keyring), so that a data subject's calls are listed, exported and
// erased without reading the others; DeleteCall removes a call with every index entry.
//
// Compaction (compact.go): bbolt leaves freed pages as they were, so deleted bytes stay in
// the file. Compact copies the live records into a new file while the switch serves, makes
// in the copy the changes committed meanwhile (write transactions log them, oplog.go), and
// swaps the files; writes wait only for that last step, reads never. Erasure is: delete,
// then compact.
//
// Annotations (calls.go): a call carries what the customer says it was worth (lead status,
// tags, value, note), changed only by AnnotateCall, which checks that they belong to the
// customer; PutCall keeps them, so the call layer's last write does not undo them.
//
// Daily rollups (rollups.go): per customer and UTC day, what its calls came to by channel
// (answered, busy, missed, first-time and returning callers, talk time and its histogram,
// recorded), by landing page and by keyword, counted by PutCall in the transaction that
// completes a call, so that reports never scan calls; DeleteCall takes a call out again.
// Schema 3 added them: Open fills them once from the calls of an older file.
//
// Users (users.go): the people who log in to the web app (package app), operators and the
// users of a customer, with their one-time invitations and their sessions, both kept by the
// SHA-256 of a secret only the person holds. A customer's users go with the customer
// (PurgeCustomer) and are in its export (without password hashes and two-factor secrets).
//
// Caveats (bbolt): the file never shrinks by itself (Compact it after mass deletion); long
// read transactions block page reuse, so read closures copy values out and return quickly.
package store
