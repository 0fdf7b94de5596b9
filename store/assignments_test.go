package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestAssignmentsByCustomerAndTime(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	// Written out of order, for two customers whose ids share a prefix.
	for _, a := range []Assignment{
		{CustomerID: "ab", Number: "+31850000002", SessionID: "s3", From: t0.Add(3 * time.Hour)},
		{CustomerID: "a", Number: "+31850000009", SessionID: "x1", From: t0.Add(2 * time.Hour)},
		{CustomerID: "ab", Number: "+31850000001", SessionID: "s1", From: t0.Add(time.Hour)},
		{CustomerID: "ab", Number: "+318500000010", SessionID: "s2", From: t0.Add(2 * time.Hour)},
		{CustomerID: "ab", Number: "+31850000001", SessionID: "s0", From: t0},
	} {
		a.Until = a.From.Add(30 * time.Minute)
		if err := db.Write(ctx, func(tx *Tx) error { return tx.PutAssignment(&a) }); err != nil {
			t.Fatal(err)
		}
	}
	// Renewing rewrites the record in place.
	renewed := Assignment{CustomerID: "ab", Number: "+31850000001", SessionID: "s1", From: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.PutAssignment(&renewed) }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to time.Time
		limit    int
		want     string
	}{
		{"all", time.Time{}, time.Time{}, 0, "s0 s1 s2 s3"},
		{"from a moment on", t0.Add(time.Hour), time.Time{}, 0, "s1 s2 s3"},
		{"to a moment, inclusive", time.Time{}, t0.Add(2 * time.Hour), 0, "s0 s1 s2"},
		{"a window", t0.Add(time.Minute), t0.Add(2*time.Hour - 1), 0, "s1"},
		{"stopped by fn", time.Time{}, time.Time{}, 2, "s0 s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := db.View(func(tx *Tx) error {
				return tx.Assignments("ab", tt.from, tt.to, func(a Assignment) bool {
					if a.CustomerID != "ab" || !a.Until.Equal(a.From.Add(30*time.Minute)) && a.SessionID != "s1" {
						t.Errorf("record %+v", a)
					}
					got = append(got, a.SessionID)
					return tt.limit == 0 || len(got) < tt.limit
				})
			})
			if err != nil || fmt.Sprint(got) != "["+tt.want+"]" {
				t.Fatalf("Assignments = %v %v, want [%s]", got, err, tt.want)
			}
		})
	}
	var ofNumber []string
	db.View(func(tx *Tx) error {
		return tx.NumberAssignments("ab", "+31850000001", time.Time{}, time.Time{}, func(a Assignment) bool {
			ofNumber = append(ofNumber, a.SessionID)
			return true
		})
	})
	if fmt.Sprint(ofNumber) != "[s0 s1]" { // not s2 of +318500000010
		t.Fatalf("NumberAssignments = %v", ofNumber)
	}
	var s1 Assignment
	db.View(func(tx *Tx) error {
		return tx.Assignments("ab", t0.Add(time.Hour), t0.Add(time.Hour), func(a Assignment) bool { s1 = a; return false })
	})
	if s1 != renewed {
		t.Fatalf("renewed record = %+v, want %+v", s1, renewed)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.PutAssignment(&Assignment{Number: "+31850000001", SessionID: "s9"}) }); err == nil {
		t.Fatal("an assignment without a customer was written")
	}
}

// schema1Record is an assignment of the schema 1 file in testdata, by the utm_source of its
// session and offsets from the file's first lease.
type schema1Record struct {
	customer, session, number string
	from, until               time.Duration
}

// schema1Converted is what the conversion of testdata/schema1.db must give. The file was
// written by the schema 1 build (commit fbc5d2c) through its pool, with a clock starting at
// 2026-03-02 09:00 UTC and leases of 30 minutes: session a takes +31850000001 at +0; b takes
// +31850000002 at +1m and renews it at +20, +40, +60 and +80m (until +110m); c (of bakery)
// takes +31850000011 at +5m; d takes +31850000001 at +70m, and e takes it over at +90m while
// d's lease runs (the pool of two was exhausted). A last record was written directly for
// +31850000077, a number the file does not have. b's lease of 109 minutes becomes segments.
var schema1Converted = []schema1Record{
	{"acme", "a", "+31850000001", 0, 30 * time.Minute},
	{"acme", "b", "+31850000002", time.Minute, 31 * time.Minute},
	{"acme", "b", "+31850000002", 31 * time.Minute, 61 * time.Minute},
	{"acme", "b", "+31850000002", 61 * time.Minute, 91 * time.Minute},
	{"acme", "d", "+31850000001", 70 * time.Minute, 90 * time.Minute},
	{"acme", "e", "+31850000001", 90 * time.Minute, 120 * time.Minute},
	{"acme", "b", "+31850000002", 91 * time.Minute, 110 * time.Minute},
	{"bakery", "c", "+31850000011", 5 * time.Minute, 35 * time.Minute},
}

// copyTestdata copies the store file testdata/<name> into a temporary directory and answers
// the copy's path.
func copyTestdata(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// convertedRecords lists the assignments of acme and bakery in an open schema 2 store.
func convertedRecords(t *testing.T, db *DB) []schema1Record {
	t.Helper()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var got []schema1Record
	err := db.View(func(tx *Tx) error {
		for _, cu := range []string{"acme", "bakery"} {
			var errs []error
			err := tx.Assignments(cu, time.Time{}, time.Time{}, func(a Assignment) bool {
				s, err := tx.Session(a.SessionID)
				if err != nil {
					errs = append(errs, fmt.Errorf("session of %+v: %w", a, err))
				}
				got = append(got, schema1Record{a.CustomerID, s.UTMSource, a.Number, a.From.Sub(t0), a.Until.Sub(t0)})
				return true
			})
			if err != nil || len(errs) > 0 {
				return fmt.Errorf("%v %v", err, errs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// schemaOf reads the schema version of an open store.
func schemaOf(t *testing.T, db *DB) uint32 {
	t.Helper()
	var v uint32
	db.view(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketMeta).Get(keySchema); len(raw) == 4 {
			v = binary.BigEndian.Uint32(raw)
		}
		if tx.Bucket(bucketAssignV1) != nil || tx.Bucket(bucketMeta).Get(keyMigrateAfter) != nil {
			t.Error("the schema 1 bucket or the conversion's mark is left")
		}
		return nil
	})
	return v
}

func TestSchema1FileIsConverted(t *testing.T) {
	skipOnPostgres(t, "the conversion of a schema-1 file; PostgreSQL has no schema 1")
	path := copyTestdata(t, "schema1.db")
	if err := Verify(path); err != nil {
		t.Fatalf("Verify of a schema 1 file: %v", err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaOf(t, db); v != SchemaVersion {
		t.Fatalf("schema after Open = %d", v)
	}
	if got := convertedRecords(t, db); !slices.Equal(got, schema1Converted) {
		t.Fatalf("converted:\n%v\nwant\n%v", got, schema1Converted)
	}
	// The rest of the file is as it was.
	var st CustomerStats
	db.View(func(tx *Tx) (err error) { st, err = tx.Stats("acme"); return err })
	if st.SessionsTotal != 4 || st.Exhaustions != 1 {
		t.Fatalf("acme's counters: %+v", st)
	}
	db.Close()
	if err := Verify(path); err != nil {
		t.Fatalf("Verify after the conversion: %v", err)
	}
	// Opening again changes nothing.
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := convertedRecords(t, db); !slices.Equal(got, schema1Converted) {
		t.Fatalf("after reopening:\n%v", got)
	}
}

func TestSchema1ConversionResumes(t *testing.T) {
	skipOnPostgres(t, "the conversion of a schema-1 file; PostgreSQL has no schema 1")
	path := copyTestdata(t, "schema1.db")
	// A conversion cut short after its first customer (a crash).
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketAssignByTime)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	half := &DB{}
	half.cur.Store(newHandle(b))
	n, err := half.migrateCustomer("acme", []string{"+31850000001", "+31850000002"})
	b.Close()
	if n != 7 || err != nil {
		t.Fatalf("first customer: %d records, %v", n, err)
	}
	if err := Verify(path); err != nil {
		t.Fatalf("Verify halfway: %v", err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v := schemaOf(t, db); v != SchemaVersion {
		t.Fatalf("schema after Open = %d", v)
	}
	if got := convertedRecords(t, db); !slices.Equal(got, schema1Converted) {
		t.Fatalf("converted in two goes:\n%v\nwant\n%v", got, schema1Converted)
	}
}

func TestExpireKeepsTheEndOfALeaseCutShort(t *testing.T) {
	// s2 took the number over from s1 at +10m; the record of the takeover names s1's, which
	// was not rewritten. s2 never led to a call and expires with its record: s1's record,
	// kept for its call, then ends where s2's began.
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	s1, s2 := testCallID(t0, 1), testCallID(t0.Add(10*time.Minute), 2)
	p := Assignment{CustomerID: "acme", Number: "+31850000001", SessionID: s1, From: t0, Until: t0.Add(30 * time.Minute)}
	r := Assignment{CustomerID: "acme", Number: "+31850000001", SessionID: s2, From: t0.Add(10 * time.Minute),
		Until: t0.Add(40 * time.Minute), CutFrom: t0}
	err := db.Write(ctx, func(tx *Tx) error {
		for _, s := range []string{s1, s2} {
			if err := tx.PutSession(&Session{ID: s, CustomerID: "acme", Channel: "Direct"}); err != nil {
				return err
			}
		}
		if err := tx.PutCall(&Call{ID: testCallID(t0.Add(time.Minute), 3), CustomerID: "acme", SessionID: s1,
			Start: t0.Add(time.Minute), End: t0.Add(2 * time.Minute)}); err != nil {
			return err
		}
		if err := tx.PutAssignment(&p); err != nil {
			return err
		}
		return tx.PutAssignment(&r)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []Assignment
	read := func() {
		got = nil
		db.View(func(tx *Tx) error {
			return tx.Assignments("acme", time.Time{}, time.Time{}, func(a Assignment) bool { got = append(got, a); return true })
		})
	}
	if read(); len(got) != 2 || got[0] != p || got[1] != r {
		t.Fatalf("records as written: %+v", got)
	}
	res, err := db.ExpireSessions(ctx, "acme", t0.Add(time.Hour), 0)
	if err != nil || res.Sessions != 1 || res.Assignments != 1 {
		t.Fatalf("ExpireSessions = %+v %v, want s2 and its record", res, err)
	}
	want := p
	want.Until = r.From
	if read(); len(got) != 1 || got[0] != want {
		t.Fatalf("left: %+v, want %+v", got, want)
	}
}
