package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestAgentTokens(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	h1, h2 := sha256.Sum256([]byte("tla_one")), sha256.Sum256([]byte("tla_two"))
	put := func(hash [32]byte, tok AgentToken) error {
		return db.Write(ctx, func(tx *Tx) error { return tx.PutAgentToken(hash, &tok) })
	}
	if err := put(h1, AgentToken{ID: "a1", CustomerID: "acme", Label: "Anna", Groups: []string{"sales"}, Created: t0}); err != nil {
		t.Fatal(err)
	}
	if err := put(h2, AgentToken{ID: "a1", CustomerID: "bakery", Label: "Bob", Groups: []string{"desk"}, Created: t0}); err != nil {
		t.Fatal(err)
	}
	if err := put(h1, AgentToken{ID: "a9", CustomerID: "acme"}); !errors.Is(err, ErrExists) {
		t.Fatalf("same secret: %v, want ErrExists", err)
	}
	// An agent token is no API token, and the other way round.
	if _, err := db.TokenByHash(h1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("agent token found as an API token: %v", err)
	}
	if tok, err := db.AgentTokenByHash(h1); err != nil || tok.CustomerID != "acme" || tok.Groups[0] != "sales" {
		t.Fatalf("AgentTokenByHash = %+v, %v", tok, err)
	}
	if toks, err := db.AgentTokens("acme"); err != nil || len(toks) != 1 || toks[0].Label != "Anna" {
		t.Fatalf("AgentTokens(acme) = %+v, %v", toks, err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteAgentToken("acme", "a2") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteAgentToken("acme", "a1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AgentTokenByHash(h1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked agent token still found: %v", err)
	}
	if tok, err := db.AgentTokenByHash(h2); err != nil || tok.CustomerID != "bakery" {
		t.Fatalf("another customer's token went with it: %+v, %v", tok, err)
	}
}
