// Package provision applies the configured customers to the domain: it checks them by the
// rules the admin API applies (package pool) and that their prompt files load (package
// recordings), turns them into store records, and seeds the ones the store does not have.
//
// Package configs holds the schema and checks only what can be told from the file itself, so
// that it can be read without the domain; this package is the step between the two, run by
// cmd/trackline at start (Check, then Seed).
package provision
