// Package keyring keeps one secret per customer, in files beside the store and outside the
// bbolt file, so that a customer's secret can be destroyed on its own.
//
// # What it owns
//
// The keys directory (<data_dir>/keys), one file per customer:
//
//	<dir>/<customer>.key    0600, written once (temporary file, fsync, rename, directory fsync)
//
// A key file holds a 256-bit random secret, in the clear or, with a master key
// (WithMasterKey), sealed with AES-256-GCM under it. From the secret, HKDF-SHA256 derives
// the keys that are used:
//
//   - the recording key, from which package recordings derives one AES-256-GCM key per
//     recording file (Key.FileKey);
//   - the caller pseudonym key: Key.Pseudonym is HMAC-SHA256 of a caller's number under it,
//     so the same caller gets the same pseudonym at one customer, and different ones at two.
//   - the field key (Key.FieldKey): package store seals a customer's personal fields with it
//     on PostgreSQL (a caller's number, a landing page, a referrer).
//
// # Shared keys (a cluster)
//
// With WithObjects the keys are objects in an S3-compatible bucket instead of files, so that
// every node of a cluster has the same key for a customer (a recording made on one node
// plays on another; personal fields sealed on one node open on another). They are never
// kept in the shared database: its WAL, replicas and backups would outlive a destruction.
// Objects are always sealed with the master key; making one is a conditional PUT
// (If-None-Match: *), so two nodes making one customer's key at once agree; each node caches
// the keys it read and drops a destroyed one when told (Forget) or at its next revalidation
// (Run); a destruction is kept as a marker in the keys directory until the object store
// confirms it. See shared.go.
//
// # Destroying a key (crypto-shredding)
//
// Destroy overwrites the key file with zeros, fsyncs it, removes it and fsyncs the
// directory. From then on the customer's recordings, wherever copies of them are (backups
// included), cannot be decrypted, and its callers' pseudonyms cannot be linked to a number
// any more: nobody can compute the HMAC without the secret. Lookup never makes a key, so a
// read cannot bring a destroyed key back; Get makes a new, different one.
//
// # Caveats
//
//   - The keys are as sensitive as the data: back the directory up separately from the
//     store and the recordings (a backup that holds both defeats the encryption), and keep
//     key backups no longer than the recordings they open: a key restored from a backup
//     opens the recordings of a customer that was erased after that backup.
//   - Losing the directory without a backup loses every recording.
//   - Overwriting before removing makes the old secret unrecoverable on filesystems that
//     write in place (ext4, xfs); on copy-on-write filesystems and SSDs old blocks may
//     survive until reused. With a master key, a surviving key file is still sealed.
//   - Keys are cached in memory once read; nothing here is a defence against someone who
//     can read the process's memory.
//   - Shared keys: what an object store keeps of a deleted object is its own (SeaweedFS
//     keeps it in its volume files or filer store until vacuumed or compacted; a versioned
//     bucket keeps it as a noncurrent version: do not version the keys' bucket). Those
//     bytes are sealed with the master key.
package keyring
