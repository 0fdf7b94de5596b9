// Package jsonw holds the pieces the reflection-free JSON writers of the hot paths share
// (the session record in store, the session answer in api): whether encoding/json would
// write a string as it is (PlainASCII) and appending a member whose value is such a string
// (AppendMember).
//
// It is a leaf: it imports only the standard library, so every package of trackline may
// import it. A writer that uses it must fall back to encoding/json for any string that is
// not plain, and have a test that both ways give the same bytes.
package jsonw
