// Package fsutil holds the small file-system helpers that store, store/keyring and
// recordings share: making a rename or create durable (SyncDir) and checking that an id is
// safe as one path component (SafeID).
//
// It is a leaf: it imports only the standard library, so every package of trackline may
// import it without a dependency that points up. It owns no files and keeps no state.
package fsutil
