package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	h1, h2, h3 := sha256.Sum256([]byte("tlc_one")), sha256.Sum256([]byte("tlc_two")), sha256.Sum256([]byte("tlc_three"))
	for _, w := range []struct {
		hash [32]byte
		tok  Token
	}{
		{h1, Token{ID: "t1", CustomerID: "acme", Label: "crm", Created: t0, Hint: "_one"}},
		{h2, Token{ID: "t2", CustomerID: "acme", Label: "dashboard", Created: t0}},
		{h3, Token{ID: "t1", CustomerID: "bakery", Label: "crm", Created: t0}},
	} {
		if err := db.Write(ctx, func(tx *Tx) error { return tx.PutToken(w.hash, &w.tok) }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		hash [32]byte
		tok  Token
	}{
		{"same secret", h1, Token{ID: "t9", CustomerID: "acme"}},
		{"same id", sha256.Sum256([]byte("x")), Token{ID: "t2", CustomerID: "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.Write(ctx, func(tx *Tx) error { return tx.PutToken(tt.hash, &tt.tok) }); !errors.Is(err, ErrExists) {
				t.Fatalf("PutToken = %v, want ErrExists", err)
			}
		})
	}
	if tok, err := db.TokenByHash(h1); err != nil || tok.CustomerID != "acme" || tok.ID != "t1" || tok.Hint != "_one" {
		t.Fatalf("TokenByHash = %+v, %v", tok, err)
	}
	toks, err := db.Tokens("acme")
	if err != nil || len(toks) != 2 || toks[0].Label != "crm" || toks[1].Label != "dashboard" {
		t.Fatalf("Tokens(acme) = %+v, %v", toks, err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteToken("bakery", "t2") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete another customer's token = %v, want ErrNotFound", err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteToken("acme", "t1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenByHash(h1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token still found: %v", err)
	}
	if toks, _ := db.Tokens("acme"); len(toks) != 1 || toks[0].ID != "t2" {
		t.Fatalf("after revoke: %+v", toks)
	}
	if toks, _ := db.Tokens("bakery"); len(toks) != 1 {
		t.Fatalf("bakery's token went with acme's: %+v", toks)
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
