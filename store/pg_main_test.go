package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/trackline/trackline/internal/pgtest"
)

// The store's tests run on bbolt; with TRACKLINE_TEST_STORE=postgres, openTest opens each
// test's store on PostgreSQL instead: a real server (package pgtest) started once for the
// test binary, and a fresh database per test, copied from a migrated template. The tests of
// the PostgreSQL backend itself (pg_test.go) use it whatever the variable says. make test
// runs the tests of what PostgreSQL implements a second time with the variable set (see the
// Makefile); the others are listed in docs/cluster.md.

// testPG is the test binary's PostgreSQL server, started on first use.
var testPG struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
	n    atomic.Int64 // databases made
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

// testDriver is the driver of openTest: "bbolt" (the default) or "postgres".
func testDriver(tb testing.TB) string {
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

// pgTemplate is the database every test's database is copied from: migrated, empty.
const pgTemplate = "store_template"

// pgServer is the tests' PostgreSQL server, with the template database.
func pgServer(tb testing.TB) *pgtest.Server {
	tb.Helper()
	testPG.once.Do(func() {
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
		db, err := OpenPostgres(ctx, srv.DSN(pgTemplate))
		if err != nil {
			testPG.err = fmt.Errorf("migrate the template: %w", err)
			return
		}
		testPG.err = db.Close()
	})
	if testPG.err != nil {
		tb.Fatalf("the tests' postgres: %v", testPG.err)
	}
	return testPG.srv
}

// newPostgresDatabase makes a fresh database, migrated unless empty is set, and answers its DSN.
func newPostgresDatabase(tb testing.TB, empty bool) string {
	tb.Helper()
	srv := pgServer(tb)
	name := fmt.Sprintf("test_%d", testPG.n.Add(1))
	template := pgTemplate
	if empty {
		template = ""
	}
	if err := srv.CreateDatabase(context.Background(), name, template); err != nil {
		tb.Fatal(err)
	}
	return srv.DSN(name)
}

// openPostgresTest opens a store on a fresh migrated database, closed at the end of the test.
func openPostgresTest(tb testing.TB, opts ...Option) *DB {
	tb.Helper()
	db, err := OpenPostgres(context.Background(), newPostgresDatabase(tb, false), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// pgRawHolds is rawHolds on PostgreSQL: the rows of every table of the store whose text
// holds needle, in text and jsonb columns as it is, in bytea columns (the sealed personal
// fields) as PostgreSQL writes bytes in text, hex. It answers table/row descriptions.
func pgRawHolds(t *testing.T, db *DB, needle string) []string {
	t.Helper()
	var where []string
	err := db.View(func(tx *Tx) error {
		var tables []string
		if err := tx.pg.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`, nil,
			func(r pgx.Rows) error {
				var name string
				tables = append(tables, name)
				return r.Scan(&tables[len(tables)-1])
			}); err != nil {
			return err
		}
		for _, table := range tables {
			q := `SELECT t::text FROM ` + pgx.Identifier{table}.Sanitize() + ` t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0`
			if err := tx.pg.query(q, []any{needle, hex.EncodeToString([]byte(needle))}, func(r pgx.Rows) error {
				var row string
				if err := r.Scan(&row); err != nil {
					return err
				}
				where = append(where, table+"/"+row)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return where
}

// skipOnPostgres skips a test of bbolt's file itself (its compaction, its backup, the
// conversion of an earlier build's file) when the tests run on PostgreSQL; why names what
// PostgreSQL has instead, and the test that checks it there.
func skipOnPostgres(tb testing.TB, why string) {
	tb.Helper()
	if testDriver(tb) == "postgres" {
		tb.Skip("bbolt's file only: " + why)
	}
}

// testStoreOpener answers a function that opens one store of the tests' driver, again after
// each Close: a bbolt file in a temporary directory, or a fresh PostgreSQL database whose
// poller for other nodes' writes is off (the tests take what is due themselves). The caller
// closes what it opened.
func testStoreOpener(t *testing.T, opts ...Option) func() *DB {
	t.Helper()
	if testDriver(t) == "postgres" {
		dsn := newPostgresDatabase(t, false)
		return func() *DB {
			t.Helper()
			db, err := OpenPostgres(context.Background(), dsn, opts...)
			if err != nil {
				t.Fatal(err)
			}
			db.pg.outbox.pollEvery.Store(int64(time.Hour))
			return db
		}
	}
	path := filepath.Join(t.TempDir(), "trackline.db")
	return func() *DB {
		t.Helper()
		db, err := Open(path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
}

// reopenTest closes db and opens its store again with opts, on its own driver: the same
// bbolt file or the same PostgreSQL database. The store opened is closed at the end of the test.
func reopenTest(t *testing.T, db *DB, opts ...Option) *DB {
	t.Helper()
	where, pg := db.Path(), db.pg != nil
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if pg {
		db, err = OpenPostgres(context.Background(), where, opts...)
	} else {
		db, err = Open(where, opts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	if pg {
		db.pg.outbox.pollEvery.Store(int64(time.Hour))
	}
	t.Cleanup(func() { db.Close() })
	return db
}
