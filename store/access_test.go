package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Every kind of token is stored, found, listed and revoked the same way, each in its own
// buckets.
func TestTokens(t *testing.T) {
	for _, kind := range tokenKinds {
		t.Run(kind.String(), func(t *testing.T) { testTokens(t, kind) })
	}
}

func testTokens(t *testing.T, kind TokenKind) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	h1, h2, h3 := sha256.Sum256([]byte("tlc_one")), sha256.Sum256([]byte("tlc_two")), sha256.Sum256([]byte("tlc_three"))
	for _, w := range []struct {
		hash [32]byte
		tok  Token
	}{
		{h1, Token{Kind: kind, ID: "t1", CustomerID: "acme", Label: "crm", Groups: []string{"sales"}, Created: t0, Hint: "_one"}},
		{h2, Token{Kind: kind, ID: "t2", CustomerID: "acme", Label: "dashboard", Created: t0}},
		{h3, Token{Kind: kind, ID: "t1", CustomerID: "bakery", Label: "crm", Created: t0}},
	} {
		if err := db.Write(ctx, func(tx *Tx) error { return tx.PutToken(w.hash, &w.tok) }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		hash [32]byte
		tok  Token
		want error
	}{
		{"same secret", h1, Token{Kind: kind, ID: "t9", CustomerID: "acme"}, ErrExists},
		{"same id", sha256.Sum256([]byte("x")), Token{Kind: kind, ID: "t2", CustomerID: "acme"}, ErrExists},
		{"no kind", sha256.Sum256([]byte("y")), Token{ID: "t3", CustomerID: "acme"}, ErrTokenKind},
		{"unknown kind", sha256.Sum256([]byte("y")), Token{Kind: TokenKind(99), ID: "t3", CustomerID: "acme"}, ErrTokenKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.Write(ctx, func(tx *Tx) error { return tx.PutToken(tt.hash, &tt.tok) }); !errors.Is(err, tt.want) {
				t.Fatalf("PutToken = %v, want %v", err, tt.want)
			}
		})
	}
	if tok, err := db.TokenByHash(kind, h1); err != nil || tok.Kind != kind || tok.CustomerID != "acme" || tok.ID != "t1" ||
		tok.Hint != "_one" || !slices.Equal(tok.Groups, []string{"sales"}) {
		t.Fatalf("TokenByHash = %+v, %v", tok, err)
	}
	toks, err := db.Tokens(kind, "acme")
	if err != nil || len(toks) != 2 || toks[0].Label != "crm" || toks[1].Label != "dashboard" || toks[1].Kind != kind {
		t.Fatalf("Tokens(acme) = %+v, %v", toks, err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteToken(kind, "bakery", "t2") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete another customer's token = %v, want ErrNotFound", err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteToken(kind, "acme", "t1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenByHash(kind, h1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token still found: %v", err)
	}
	if toks, _ := db.Tokens(kind, "acme"); len(toks) != 1 || toks[0].ID != "t2" {
		t.Fatalf("after revoke: %+v", toks)
	}
	if toks, _ := db.Tokens(kind, "bakery"); len(toks) != 1 {
		t.Fatalf("bakery's token went with acme's: %+v", toks)
	}
}

// A token of one kind is never found, listed or revoked as one of another: an agent token
// opens no admin API, an API token no agent page.
func TestTokenKindsApart(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	h := sha256.Sum256([]byte("tla_one"))
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.PutToken(h, &Token{Kind: TokenAgent, ID: "a1", CustomerID: "acme", Groups: []string{"sales"}})
	}); err != nil {
		t.Fatal(err)
	}
	// The same secret and id are free in the other kind's buckets.
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.PutToken(sha256.Sum256([]byte("tlc_one")), &Token{Kind: TokenAPI, ID: "a1", CustomerID: "acme"})
	}); err != nil {
		t.Fatalf("an API token with an agent token's id: %v", err)
	}
	if _, err := db.TokenByHash(TokenAPI, h); !errors.Is(err, ErrNotFound) {
		t.Fatalf("agent token found as an API token: %v", err)
	}
	if _, err := db.TokenByHash(TokenUnknown, h); !errors.Is(err, ErrTokenKind) {
		t.Fatalf("TokenByHash of no kind = %v, want ErrTokenKind", err)
	}
	if toks, err := db.Tokens(TokenAgent, "acme"); err != nil || len(toks) != 1 || toks[0].Kind != TokenAgent {
		t.Fatalf("Tokens(agent, acme) = %+v, %v", toks, err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteToken(TokenAPI, "acme", "a1") }); err != nil {
		t.Fatal(err)
	}
	if tok, err := db.TokenByHash(TokenAgent, h); err != nil || tok.ID != "a1" || tok.Kind != TokenAgent {
		t.Fatalf("revoking the API token a1 took the agent token a1: %+v, %v", tok, err)
	}
}

// testdata/tokens.db was written by the build before tokens had a kind (commit 5751695),
// which kept API tokens and agent tokens in two types and two sets of calls: two API tokens
// of acme (t1 "crm", t2 without a label), one of bakery (t1 "crm"), and one agent token each
// (acme's a1 "Anna" in sales and support, bakery's a1 "Bob" at the desk), all made at
// 2026-05-01 10:00 UTC (t2 a minute later), each secret the kind's prefix and
// <customer>-<label>. This build reads them as they are.
func TestTokensOfEarlierBuild(t *testing.T) {
	skipOnPostgres(t, "tokens in an earlier build's buckets; PostgreSQL's tokens table was made in its current layout")
	db, err := Open(copyTestdata(t, "tokens.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	want := map[string]Token{
		"tlc_acme-crm":   {Kind: TokenAPI, ID: "t1", CustomerID: "acme", Label: "crm", Created: t0, Hint: "-crm"},
		"tlc_acme-dash":  {Kind: TokenAPI, ID: "t2", CustomerID: "acme", Created: t0.Add(time.Minute), Hint: "dash"},
		"tlc_bakery-crm": {Kind: TokenAPI, ID: "t1", CustomerID: "bakery", Label: "crm", Created: t0, Hint: "-crm"},
		"tla_acme-anna": {Kind: TokenAgent, ID: "a1", CustomerID: "acme", Label: "Anna", Groups: []string{"sales", "support"},
			Created: t0, Hint: "anna"},
		"tla_bakery-bob": {Kind: TokenAgent, ID: "a1", CustomerID: "bakery", Label: "Bob", Groups: []string{"desk"}, Created: t0,
			Hint: "-bob"},
	}
	for secret, w := range want {
		got, err := db.TokenByHash(w.Kind, sha256.Sum256([]byte(secret)))
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("TokenByHash(%v, %s) = %+v, %v; want %+v", w.Kind, secret, got, err, w)
		}
	}
	for _, tt := range []struct {
		kind     TokenKind
		customer string
		ids      []string
	}{
		{TokenAPI, "acme", []string{"t1", "t2"}},
		{TokenAPI, "bakery", []string{"t1"}},
		{TokenAgent, "acme", []string{"a1"}},
		{TokenAgent, "bakery", []string{"a1"}},
	} {
		toks, err := db.Tokens(tt.kind, tt.customer)
		var ids []string
		for _, tok := range toks {
			ids = append(ids, tok.ID)
		}
		if err != nil || !slices.Equal(ids, tt.ids) {
			t.Errorf("Tokens(%v, %s) = %v, %v; want %v", tt.kind, tt.customer, ids, err, tt.ids)
		}
	}
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.DeleteToken(TokenAgent, "acme", "a1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenByHash(TokenAgent, sha256.Sum256([]byte("tla_acme-anna"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked agent token still found: %v", err)
	}
}

// The audit log keeps an entry's JSON (without its id) under its time and sequence, and in
// the customer index the key alone: nothing but what the entry holds, so that a check of
// the entries is a check of the bytes on disk.
func TestAuditStoresTheEntryOnly(t *testing.T) {
	db := openTest(t)
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	e := AuditEntry{ID: "ignored", Time: at, Actor: "token:t1", Action: "caller.erase", CustomerID: "acme",
		IDs: []string{"c1", "c2"}, Counts: map[string]int{"calls": 2}}
	if err := db.Write(context.Background(), func(tx *Tx) error { return tx.AppendAudit(&e) }); err != nil {
		t.Fatal(err)
	}
	stored := e
	stored.ID = ""
	value, err := json.Marshal(&stored)
	if err != nil {
		t.Fatal(err)
	}
	if db.pg != nil {
		// PostgreSQL: one row, the entry's fields in columns, its id (time and seq) the key.
		var got []string
		if err := db.View(func(tx *Tx) error {
			return tx.pg.query(`SELECT row_to_json(a)::text FROM audit_log a`, nil, func(r pgx.Rows) error {
				var row string
				got = append(got, row)
				return r.Scan(&got[len(got)-1])
			})
		}); err != nil {
			t.Fatal(err)
		}
		want := []string{fmt.Sprintf(`{"time_ns":%d,"seq":1,"actor":"token:t1","action":"caller.erase","customer_id":"acme","ids":["c1","c2"],"counts":{"calls": 2}}`,
			at.UnixNano())}
		if !slices.Equal(got, want) {
			t.Fatalf("stored %q, want %q", got, want)
		}
	} else {
		key := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
		key = binary.BigEndian.AppendUint64(key, 1)
		want := []string{fmt.Sprintf("%x=%s", key, value), fmt.Sprintf("%x=", append(compose("acme", ""), key...))}
		var got []string
		if err := db.AuditRaw(func(k, v []byte) error { got = append(got, fmt.Sprintf("%x=%s", k, v)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("stored %q, want %q", got, want)
		}
	}
	entries, _, err := db.AuditLog(AuditFilter{})
	if err != nil || len(entries) != 1 {
		t.Fatalf("AuditLog = %+v, %v", entries, err)
	}
	entries[0].ID = ""
	if again, _ := json.Marshal(&entries[0]); string(again) != string(value) {
		t.Fatalf("the entry read back encodes as %s, stored as %s", again, value)
	}
}

func TestAuditLog(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	// Ten entries a minute apart, alternating customers; two share the last nanosecond.
	for i := range 10 {
		cu := []string{"acme", "bakery"}[i%2]
		at := t0.Add(time.Duration(i) * time.Minute)
		if i == 9 {
			at = t0.Add(8 * time.Minute)
		}
		e := AuditEntry{Time: at, Actor: "operator", Action: fmt.Sprintf("a%d", i), CustomerID: cu, IDs: []string{"x"}}
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Audit returns before the commit; a waited write after it is committed after it.
	if err := db.Write(ctx, func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	actions := func(es []AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Action)
		}
		return out
	}
	tests := []struct {
		name string
		f    AuditFilter
		want []string
	}{
		{"all", AuditFilter{}, []string{"a9", "a8", "a7", "a6", "a5", "a4", "a3", "a2", "a1", "a0"}},
		{"customer", AuditFilter{CustomerID: "acme"}, []string{"a8", "a6", "a4", "a2", "a0"}},
		{"other customer", AuditFilter{CustomerID: "bakery", Limit: 2}, []string{"a9", "a7"}},
		{"unknown customer", AuditFilter{CustomerID: "acm"}, nil},
		{"from to", AuditFilter{From: t0.Add(2 * time.Minute), To: t0.Add(5 * time.Minute)}, []string{"a4", "a3", "a2"}},
		{"customer from to", AuditFilter{CustomerID: "acme", From: t0.Add(2 * time.Minute), To: t0.Add(5 * time.Minute)}, []string{"a4", "a2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := db.AuditLog(tt.f)
			if err != nil || !slices.Equal(actions(got), tt.want) {
				t.Fatalf("AuditLog = %v, %v, want %v", actions(got), err, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		for _, cu := range []string{"", "acme"} {
			var all []string
			f := AuditFilter{CustomerID: cu, Limit: 3}
			for range 10 {
				page, next, err := db.AuditLog(f)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, actions(page)...)
				if next == "" {
					break
				}
				f.Before = next
			}
			want, _, _ := db.AuditLog(AuditFilter{CustomerID: cu})
			if !slices.Equal(all, actions(want)) {
				t.Fatalf("customer %q: pages %v, want %v", cu, all, actions(want))
			}
		}
	})
}
