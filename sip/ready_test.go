package sip

import (
	"context"
	"testing"
)

func TestListening(t *testing.T) {
	unbound, err := New(Config{Listen: "127.0.0.1:0"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if unbound.Listening() {
		t.Errorf("Listening before Listen = true, want false")
	}
	unbound.Close()

	e := newEnv(t, envOpts{})
	if !e.sw.Listening() {
		t.Fatalf("Listening after Listen and Serve = false, want true")
	}
	e.sw.Drain(context.Background()) // no calls: returns at once
	if e.sw.Listening() {
		t.Errorf("Listening while draining = true, want false")
	}
}
