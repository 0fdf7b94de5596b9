// Package privacy is what the data subjects and the customers' erasure ask of trackline, in
// one place for every surface that offers them (the admin API, the web app): a caller
// named by their number is looked up, exported (a zip of caller.json and the recordings as
// plain WAV) or erased at a customer; a customer is erased whole.
//
// A caller is found through their pseudonym at the customer (a keyed hash, package
// keyring), so the lookup works the same for customers with pseudonymous callers. The
// number itself is never logged or written to the audit log: entries name the calls and
// recordings concerned, and a Subject prints without it.
//
// Every operation writes the audit log with the actor its caller names ("operator",
// "token:<id>", "user:<id>"): a lookup or an export queues its entry for the next commit,
// an erasure commits its entry with the deletion (a caller) or right after it (a customer).
//
// Erasure is irrevocable and runs whole again when called again: a crash or an error midway
// leaves nothing that a second call, or the next start, does not remove. Both erasures end
// with the store file compacted, so that no freed page keeps what was deleted.
//
// What it does not own: who may ask (tenancy, tokens, users and roles are the caller's), the
// records and their layout (package store), the customers and the contract lifecycle
// (package pool), recording files and their encryption (package recordings), and the
// customer's whole export archive (recordings.Exporter).
package privacy
