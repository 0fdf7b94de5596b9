// Package accounts is what the web app's accounts mean, apart from HTTP: passwords (argon2id
// PHC strings and the rules for choosing one), one-time tokens and their hashes, and
// invitations (a user without a password and the link that lets them choose one). The web
// app (package app), the admin API (package api) and the config's seeding (package
// provision) use it, so that a user is made and invited one way.
//
// It keeps nothing itself: users and invitations are records of package store, and only a
// token's SHA-256 is ever stored.
package accounts
