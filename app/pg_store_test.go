package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/store"
)

// The web app's tests run on a bbolt store; with TRACKLINE_TEST_STORE=postgres, on a fresh
// database of a real PostgreSQL server (package pgtest) started once for the test binary.

var testPG struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
	n    atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testPG.srv != nil {
		if err := testPG.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the tests' postgres:", err)
		}
	}
	os.Exit(code)
}

// pgTemplate is the database every test's database is copied from: migrated, empty.
const pgTemplate = "app_template"

// startPostgres starts the server and makes the template.
func startPostgres() {
	srv, err := pgtest.Start()
	if err != nil {
		testPG.err = err
		return
	}
	testPG.srv = srv
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, pgTemplate, ""); err != nil {
		testPG.err = err
		return
	}
	db, err := store.OpenPostgres(ctx, srv.DSN(pgTemplate))
	if err != nil {
		testPG.err = fmt.Errorf("migrate the template: %w", err)
		return
	}
	testPG.err = db.Close()
}

// openStore opens a test's store, closed at its end.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	var (
		db  *store.DB
		err error
	)
	switch d := os.Getenv("TRACKLINE_TEST_STORE"); d {
	case "", "bbolt":
		db, err = store.Open(filepath.Join(t.TempDir(), "t.db"))
	case "postgres":
		testPG.once.Do(startPostgres)
		if testPG.err != nil {
			t.Fatalf("the tests' postgres: %v", testPG.err)
		}
		name := fmt.Sprintf("app_%d", testPG.n.Add(1))
		if err := testPG.srv.CreateDatabase(context.Background(), name, pgTemplate); err != nil {
			t.Fatal(err)
		}
		db, err = store.OpenPostgres(context.Background(), testPG.srv.DSN(name))
	default:
		t.Fatalf("TRACKLINE_TEST_STORE=%q: want bbolt or postgres", d)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
