package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fillForMigrate writes what CopyTo copies into a bbolt store: two customers with channels,
// pool and static numbers, more sessions than a page of SessionsOf, counters, assignments
// (one cut short), a quarantined number of nobody and a deleted customer's id; times with
// nanoseconds.
func fillForMigrate(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	err := db.Write(ctx, func(tx *Tx) error {
		for i, id := range []string{"acme", "bolt"} {
			c := Customer{ID: id, Name: strings.ToUpper(id), Status: StatusActive, SiteKey: id + "-site-key-0001",
				AllowedOrigins: []string{"https://" + id + ".example"}, BusinessLines: []string{"sip:+3120555000" + fmt.Sprint(i) + "@127.0.0.1:5090"},
				Created: t0, ActiveSince: t0.Add(time.Hour), RetentionMonths: 6}
			if err := tx.CreateCustomer(&c); err != nil {
				return err
			}
			if err := tx.PutChannel(&Channel{CustomerID: id, ID: "flyer", Name: "Flyer", Order: 1}); err != nil {
				return err
			}
			for n := 0; n < 3; n++ {
				num := Number{E164: fmt.Sprintf("+3185000%d%03d", i, n), CustomerID: id, Kind: KindPool, State: NumberAvailable, Created: t0}
				if n == 2 {
					num.Kind, num.ChannelID = KindStatic, "flyer"
				}
				if err := tx.PutNumber(&num); err != nil {
					return err
				}
			}
			if err := tx.AddStats(id, uint64(1000*(i+1)), uint64(i), 2); err != nil {
				return err
			}
		}
		if err := tx.PutNumber(&Number{E164: "+31850009999", Kind: KindPool, State: NumberQuarantined, QuarantinedUntil: t0.Add(90 * 24 * time.Hour)}); err != nil {
			return err
		}
		return tx.tx.Bucket(bucketPurged).Put([]byte("gone"), binary.BigEndian.AppendUint64(nil, uint64(t0.UnixNano())))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *Tx) error {
		for i := 0; i < 1500; i++ {
			created := t0.Add(time.Duration(i) * time.Second)
			s := Session{ID: fmt.Sprintf("s%05d", i), CustomerID: "acme", Created: created, Channel: "Organic",
				LandingPage: fmt.Sprintf("https://acme.example/p/%d?q=tegels", i), ReferrerHost: "www.google.com", Gclid: "G" + fmt.Sprint(i)}
			a := Assignment{CustomerID: "acme", Number: "+31850000000", SessionID: s.ID, From: created, Until: created.Add(30 * time.Minute)}
			if i%2 == 1 {
				a.Number, a.CutFrom = "+31850000001", created.Add(-time.Second)
			}
			if err := tx.PutSession(&s); err != nil {
				return err
			}
			if err := tx.PutAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPostgresMigrate(t *testing.T) {
	ctx := context.Background()
	src, err := Open(filepath.Join(t.TempDir(), "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillForMigrate(t, src)
	dst := openPostgresTest(t)

	progressed := 0
	rep, err := src.CopyTo(ctx, dst, func(string, int) { progressed++ })
	if err != nil {
		t.Fatal(err)
	}
	want := MigrateReport{"customers": 2, "channels": 2, "numbers": 7, "sessions": 1500, "stats": 2, "assignments": 1500, "purged_customers": 1}
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Errorf("report %v, want %v", rep, want)
	}
	if progressed < 6 {
		t.Errorf("progress told %d times, want once a batch at least", progressed)
	}
	// The copy serves the switch's reads as the source did.
	err = dst.View(func(tx *Tx) error {
		s, err := tx.Session("s01499")
		if err != nil || s.LandingPage != "https://acme.example/p/1499?q=tegels" || s.Gclid != "G1499" {
			return fmt.Errorf("session s01499: %+v %v", s, err)
		}
		st, err := tx.Stats("bolt")
		if err != nil || st.SessionsTotal != 2000 || st.Exhaustions != 1 || st.PeakAssigned != 2 {
			return fmt.Errorf("stats of bolt: %+v %v", st, err)
		}
		if !tx.Purged("gone") || tx.Purged("acme") {
			return errors.New("purged ids not copied")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A second run finds the destination taken.
	if _, err := src.CopyTo(ctx, dst, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("copy into a full store: %v, want ErrNotEmpty", err)
	}

	// The verification sees a record that differs.
	a, err := src.readAll()
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.readAll()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.same(b); err != nil {
		t.Fatalf("source and copy differ: %v", err)
	}
	b.sessions[700].LandingPage += "x"
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "sessions") {
		t.Errorf("a changed session: %v, want a difference in sessions", err)
	}
	b.sessions[700].LandingPage = a.sessions[700].LandingPage
	b.assignments = b.assignments[1:]
	if err := a.same(b); err == nil || !strings.Contains(err.Error(), "assignments: 1500 in the source, 1499") {
		t.Errorf("a lost assignment: %v", err)
	}
}

// A source with records the PostgreSQL backend does not keep yet is refused before anything
// is written, naming them.
func TestPostgresMigrateRefusesWhatItCannotCopy(t *testing.T) {
	ctx := context.Background()
	src, err := Open(filepath.Join(t.TempDir(), "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillForMigrate(t, src)
	call := Call{ID: "c1", CustomerID: "acme", Dialled: "+31850000000", Start: time.Now().UTC()}
	if err := src.Write(ctx, func(tx *Tx) error { return tx.PutCall(&call) }); err != nil {
		t.Fatal(err)
	}
	dst := openPostgresTest(t)
	_, err = src.CopyTo(ctx, dst, nil)
	if err == nil || !strings.Contains(err.Error(), "calls (1)") {
		t.Fatalf("copy of a store with a call: %v, want a refusal naming calls", err)
	}
	var n int
	if err := dst.View(func(tx *Tx) error { cs, err := tx.Customers(); n = len(cs); return err }); err != nil || n != 0 {
		t.Errorf("refused copy wrote %d customers (%v)", n, err)
	}
}
