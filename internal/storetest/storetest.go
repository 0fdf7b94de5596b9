// Package storetest opens the store of a package's tests: a bbolt file by default, or with
// TRACKLINE_TEST_STORE=postgres a fresh database on a real PostgreSQL server (package
// pgtest), started once for the test binary, each test's database copied from a migrated
// template. make test runs the tests of the packages that use it a second time with the
// variable set, so that their behaviour is checked on both backends.
//
// The store's own tests have their own helper (store/pg_main_test.go): package store cannot
// import this one, which imports it.
package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/trackline/trackline/internal/pgtest"
	"github.com/trackline/trackline/store"
)

// template is the database every test's database is copied from: migrated, empty.
const template = "storetest_template"

// server is the test binary's PostgreSQL server, started on first use.
var server struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
	n    atomic.Int64 // databases made
	dsns sync.Map     // *store.DB -> the DSN of its database
}

// Main runs the tests and then stops the server, if one was started; a package's TestMain
// calls it: os.Exit(storetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if server.srv != nil {
		if err := server.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the tests' postgres:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Driver is the driver Open uses: "bbolt" (the default) or "postgres".
func Driver(tb testing.TB) string {
	switch d := os.Getenv("TRACKLINE_TEST_STORE"); d {
	case "", "bbolt":
		return "bbolt"
	case "postgres":
		return d
	default:
		tb.Fatalf("TRACKLINE_TEST_STORE=%q: want bbolt or postgres", d)
		return ""
	}
}

// Open opens a test's store, empty, closed at the test's end.
func Open(tb testing.TB, opts ...store.Option) *store.DB {
	tb.Helper()
	var (
		db  *store.DB
		err error
	)
	if Driver(tb) == "postgres" {
		server.once.Do(start)
		if server.err != nil {
			tb.Fatalf("the tests' postgres: %v", server.err)
		}
		name := fmt.Sprintf("test_%d", server.n.Add(1))
		if err := server.srv.CreateDatabase(context.Background(), name, template); err != nil {
			tb.Fatal(err)
		}
		db, err = store.OpenPostgres(context.Background(), server.srv.DSN(name), opts...)
		if err == nil {
			server.dsns.Store(db, server.srv.DSN(name))
		}
	} else {
		db, err = store.Open(filepath.Join(tb.TempDir(), "trackline.db"), opts...)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// start starts the server and makes the template.
func start() {
	srv, err := pgtest.Start()
	if err != nil {
		server.err = err
		return
	}
	server.srv = srv
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, template, ""); err != nil {
		server.err = err
		return
	}
	db, err := store.OpenPostgres(ctx, srv.DSN(template))
	if err != nil {
		server.err = fmt.Errorf("migrate the template: %w", err)
		return
	}
	server.err = db.Close()
}

// RawHolds tells where a store Open opened keeps needle's bytes as they are: on bbolt
// "file" if the file holds them (live or freed pages); on PostgreSQL the rows of every table
// that hold them, text and jsonb as they are, bytea (a sealed field, a hash) in hex, as
// "table: row". It sees live rows only, not dead row versions or the WAL.
func RawHolds(tb testing.TB, db *store.DB, needle string) []string {
	tb.Helper()
	v, ok := server.dsns.Load(db)
	if !ok {
		raw, err := os.ReadFile(db.Path())
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(raw, []byte(needle)) {
			return []string{"file"}
		}
		return nil
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, v.(string))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		tb.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	var where []string
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+
			` t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0`, needle, hex.EncodeToString([]byte(needle)))
		if err != nil {
			tb.Fatal(err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatal(err)
		}
		for _, row := range found {
			where = append(where, table+": "+strings.TrimSpace(row))
		}
	}
	return where
}
