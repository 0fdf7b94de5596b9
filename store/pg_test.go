package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tests of the PostgreSQL backend itself, on the tests' real server whatever
// TRACKLINE_TEST_STORE says. The behaviour both backends share is tested by the store's
// other tests, run on PostgreSQL with TRACKLINE_TEST_STORE=postgres.

// pgConn is a connection of its own to the database of dsn, beside the store's.
func pgConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresMigratesReopensAndChecksSchema(t *testing.T) {
	ctx := context.Background()
	dsn := newPostgresDatabase(t, true) // empty: OpenPostgres migrates it
	// Two nodes starting at once migrate once (goose's advisory lock), and both open.
	dbs := make([]*DB, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = OpenPostgres(ctx, dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	s := Session{ID: "x", CustomerID: "c", Channel: "Direct", LandingPage: "https://example.com/a", Created: time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)}
	if err := dbs[0].Write(ctx, func(tx *Tx) error { return tx.PutSession(&s) }); err != nil {
		t.Fatal(err)
	}
	// Written by one node, read by the other at once.
	var got Session
	if err := dbs[1].View(func(tx *Tx) (err error) { got, err = tx.Session("x"); return err }); err != nil || got != s {
		t.Fatalf("other node reads %+v %v, want %+v", got, err, s)
	}
	for _, db := range dbs {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := dbs[0].Write(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close = %v", err)
	}
	if err := dbs[0].Ready(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after close = %v", err)
	}
	db, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	if err := db.View(func(tx *Tx) (err error) { got, err = tx.Session("x"); return err }); err != nil || got != s {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	db.Close()
	conn := pgConn(t, dsn)
	var applied int
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgSchemaTable+` WHERE version_id > 0`).Scan(&applied); err != nil || applied != len(files) {
		t.Fatalf("migrations applied: %d %v, want %d (each once, by one of the two nodes)", applied, err, len(files))
	}
	// A database a newer build migrated is left alone.
	if _, err := conn.Exec(ctx, `INSERT INTO `+pgSchemaTable+` (version_id, is_applied) VALUES (99, true)`); err != nil {
		t.Fatal(err)
	}
	if db, err := OpenPostgres(ctx, dsn); !errors.Is(err, ErrSchema) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("open of a newer schema = %v, want ErrSchema", err)
	}
}

func TestPostgresOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://user:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", // nobody listens
		"postgres://user:secret@127.0.0.1:5432/x?sslmode=nonsense",
	} {
		db, err := OpenPostgres(ctx, dsn)
		if err == nil {
			db.Close()
			t.Fatalf("OpenPostgres(%s) opened", dsn)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
}

func TestPostgresFailedWriteLeavesNothing(t *testing.T) {
	db := openPostgresTest(t)
	ctx := context.Background()
	boom := errors.New("boom")
	// Each write writes its session, reads it back (its writes are then sent, under a
	// savepoint) and writes a second record; every 10th fails after that.
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Go(func() {
			errs[i] = db.Write(ctx, func(tx *Tx) error {
				s := Session{ID: fmt.Sprintf("s%04d", i), CustomerID: "c", Channel: "Direct"}
				if err := tx.PutSession(&s); err != nil {
					return err
				}
				if got, err := tx.Session(s.ID); err != nil || got.Channel != "Direct" {
					return fmt.Errorf("own write not seen: %+v %v", got, err)
				}
				if err := tx.AddStats("c", 1, 0, 0); err != nil {
					return err
				}
				if i%10 == 3 {
					return boom
				}
				return nil
			})
		})
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		want := error(nil)
		if i%10 == 3 {
			want, failed = boom, failed+1
		}
		if !errors.Is(err, want) {
			t.Fatalf("write %d: %v, want %v", i, err, want)
		}
		var got error
		db.View(func(tx *Tx) error { _, got = tx.Session(fmt.Sprintf("s%04d", i)); return nil })
		if (want == nil) != (got == nil) {
			t.Fatalf("session of write %d (error %v): read %v", i, want, got)
		}
	}
	var st CustomerStats
	db.View(func(tx *Tx) (err error) { st, err = tx.Stats("c"); return err })
	if st.SessionsTotal != uint64(len(errs)-failed) {
		t.Fatalf("sessions counted %d, want %d", st.SessionsTotal, len(errs)-failed)
	}
}

// A unique key taken by another node between a write's check and its commit fails that
// write alone, at its commit; the writes that shared its transaction are committed.
func TestPostgresConflictAtCommitBlamesItsWrite(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	db, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The other node: a transaction that has inserted site key k, not committed yet, so
	// that the store's check does not see it and its insert waits for the key.
	other := pgConn(t, dsn)
	otherTx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherTx.Exec(ctx, `INSERT INTO customers (id, site_key, name, status, settings) VALUES ('b', 'k', 'B', 'active', '{}')`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var createErr error
	wg.Go(func() {
		createErr = db.Write(ctx, func(tx *Tx) error {
			return tx.CreateCustomer(&Customer{ID: "a", SiteKey: "k", Status: StatusActive})
		})
	})
	sessErrs := make([]error, 20)
	for i := range sessErrs {
		wg.Go(func() {
			sessErrs[i] = db.Write(ctx, func(tx *Tx) error {
				return tx.PutSession(&Session{ID: fmt.Sprintf("s%02d", i), CustomerID: "a"})
			})
		})
	}
	time.Sleep(300 * time.Millisecond) // the store's insert waits on the key
	if err := otherTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errors.Is(createErr, ErrExists) || !strings.Contains(createErr.Error(), "site key") {
		t.Fatalf("CreateCustomer = %v, want a site key ErrExists", createErr)
	}
	for i, err := range sessErrs {
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	var got []Session
	var owner Customer
	db.View(func(tx *Tx) (err error) {
		if got, err = tx.SessionsOf("a", "", 100); err != nil {
			return err
		}
		owner, err = tx.Customer("b")
		return err
	})
	if len(got) != len(sessErrs) || owner.SiteKey != "k" {
		t.Fatalf("sessions %d (want %d), owner of the key %+v", len(got), len(sessErrs), owner)
	}
	if err := db.View(func(tx *Tx) error { _, err := tx.Customer("a"); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the losing customer: %v", err)
	}
}

// Two nodes changing one record read it under its row lock: no update is lost.
func TestPostgresNodesDoNotLoseUpdates(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	var nodes [2]*DB
	for i := range nodes {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		nodes[i] = db
	}
	if err := nodes[0].Write(ctx, func(tx *Tx) error {
		return tx.CreateCustomer(&Customer{ID: "a", SiteKey: "k", Status: StatusActive})
	}); err != nil {
		t.Fatal(err)
	}
	const each = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for _, db := range nodes {
		for range each {
			wg.Go(func() {
				errs <- db.Write(ctx, func(tx *Tx) error {
					c, err := tx.Customer("a")
					if err != nil {
						return err
					}
					c.RetentionMonths++
					if err := tx.PutCustomer(&c); err != nil {
						return err
					}
					return tx.AddStats("a", 1, 0, int(c.RetentionMonths))
				})
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var c Customer
	var st CustomerStats
	nodes[1].View(func(tx *Tx) (err error) {
		if c, err = tx.Customer("a"); err != nil {
			return err
		}
		st, err = tx.Stats("a")
		return err
	})
	if c.RetentionMonths != 2*each || st.SessionsTotal != 2*each || st.PeakAssigned != 2*each {
		t.Fatalf("after %d increments: months %d, stats %+v", 2*each, c.RetentionMonths, st)
	}
}

// Every exported method of DB and Tx is implemented on PostgreSQL or listed as missing,
// and what is listed really is missing: it panics with a message that names PostgreSQL.
func TestPostgresMissingIsExact(t *testing.T) {
	missing := PostgresMissing()
	if len(missing) == 0 {
		return // all there: then serve must accept the driver (cmd's test)
	}
	for _, name := range missing {
		if pgImplemented[name] {
			t.Fatalf("%s listed as both", name)
		}
	}
	// A missing operation panics on PostgreSQL with a message that says so: tried on the
	// first of these still missing (each a read that touches its records at once).
	probes := []struct {
		name string
		call func(tx *Tx) error
	}{
		{"DB.AuditRaw", func(tx *Tx) error { return tx.db.AuditRaw(func(k, v []byte) error { return nil }) }},
		{"Tx.Endpoint", func(tx *Tx) error { _, err := tx.Endpoint("x", "y"); return err }},
	}
	listed := " " + strings.Join(missing, " ") + " "
	db := openPostgresTest(t)
	for _, p := range probes {
		if !strings.Contains(listed, " "+p.name+" ") {
			continue
		}
		err := db.View(func(tx *Tx) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%v", r)
				}
			}()
			return p.call(tx)
		})
		if err == nil || !strings.Contains(err.Error(), "not implemented on PostgreSQL") {
			t.Fatalf("%s on PostgreSQL: %v", p.name, err)
		}
		return
	}
	t.Logf("none of the probes is missing: only the list was checked (%v)", missing)
}

// The audit log refuses changes at the database too: an UPDATE fails, whoever sends it.
func TestPostgresAuditLogIsAppendOnly(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	db, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := AuditEntry{Time: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Actor: "operator", Action: "call.read", CustomerID: "acme", IDs: []string{"c1"}}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.AppendAudit(&e) }); err != nil {
		t.Fatal(err)
	}
	conn := pgConn(t, dsn)
	if _, err := conn.Exec(ctx, `UPDATE audit_log SET actor = 'someone else'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("UPDATE of the audit log: %v", err)
	}
	got, _, err := db.AuditLog(AuditFilter{CustomerID: "acme"})
	if err != nil || len(got) != 1 || got[0].Actor != "operator" {
		t.Fatalf("AuditLog = %+v %v", got, err)
	}
}

// A call's personal fields are in its sealed columns only: not in the detail, which holds
// the rest of the record in jsonb.
func TestPostgresCallPersonalFieldsSealed(t *testing.T) {
	db := openPostgresTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c := Call{ID: "01HZX0000000000000000000AA", CustomerID: "acme", Dialled: "+31850000001", Caller: "+31612345678",
		LandingPage: "https://shop.example/private-offer", ReferrerHost: "referrer.example", Channel: "Google Ads",
		Start: t0, Answer: t0.Add(5 * time.Second), End: t0.Add(65 * time.Second), Disposition: DispAnswered,
		TalkSeconds: 60, CallerPseudonym: "p1", Tags: []string{"vip"}, Media: &CallMedia{CallerCodec: "PCMA"}}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.PutCall(&c) }); err != nil {
		t.Fatal(err)
	}
	got, err := db.Call(c.ID)
	if err != nil || got.Caller != c.Caller || got.LandingPage != c.LandingPage || got.ReferrerHost != c.ReferrerHost ||
		!got.End.Equal(c.End) || got.Media == nil || got.Media.CallerCodec != "PCMA" || got.Tags[0] != "vip" {
		t.Fatalf("Call = %+v %v", got, err)
	}
	for _, personal := range []string{c.Caller, "private-offer", "referrer.example"} {
		holds := pgRawHolds(t, db, personal)
		// The landing page is also a name in the day's rollups, in plain text as on bbolt:
		// the known gap of migrations/00005_calls.sql's TODO, to close with the encryption.
		if personal == "private-offer" && len(holds) == 2 && strings.HasPrefix(holds[1], "rollup_names/") {
			holds = holds[:1]
		}
		if len(holds) != 1 || !strings.HasPrefix(holds[0], "calls/") {
			t.Fatalf("%q is in %v, want the call's row only", personal, holds)
		}
		var inDetail bool
		db.View(func(tx *Tx) error {
			return tx.pg.row(`SELECT strpos(detail::text, $1) > 0 FROM calls WHERE id = $2`, []any{personal, c.ID}, &inDetail)
		})
		if inDetail {
			t.Fatalf("%q is in the call's detail", personal)
		}
	}
}
