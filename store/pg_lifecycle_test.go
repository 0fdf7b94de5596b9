package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/store/keyring"
)

// What bbolt's file operations do on PostgreSQL: Backup refuses (PostgreSQL's own tools back
// it up), a deletion of personal data marks a compaction due, Compact (VACUUM) clears the
// mark unless a deletion marked it again meanwhile, Path hides the password, Size is the
// database's.
func TestPostgresFileOperations(t *testing.T) {
	dsn := newPostgresDatabase(t, false)
	db, err := OpenPostgres(context.Background(), strings.Replace(dsn, "postgres@", "postgres:hunter2-secret@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	var buf bytes.Buffer
	if n, err := db.Backup(&buf, func(int64) { t.Error("Backup announced a size") }); !errors.Is(err, ErrExternalBackup) || n != 0 || buf.Len() != 0 {
		t.Fatalf("Backup = %d, %v, %d bytes; want ErrExternalBackup and nothing written", n, err, buf.Len())
	}
	if p := db.Path(); strings.Contains(p, "hunter2") || !strings.HasPrefix(p, "postgres://") || !strings.Contains(p, "/test_") {
		t.Fatalf("Path = %q: want the database's address without its password", p)
	}
	size, err := db.Size()
	if err != nil || size < 1<<20 {
		t.Fatalf("Size = %d, %v: want the database's size", size, err)
	}

	if due, err := db.CompactionDue(); err != nil || due {
		t.Fatalf("CompactionDue on a new database = %v, %v", due, err)
	}
	needles, _ := fillCalls(t, db, 20)
	deleteCalls(t, db, needles[:2])
	if due, err := db.CompactionDue(); err != nil || !due {
		t.Fatalf("CompactionDue after DeleteCall = %v, %v; want true", due, err)
	}
	// The dead row versions of the deleted calls are there until VACUUM.
	dead := func() int64 {
		var n int64
		err := db.View(func(tx *Tx) error {
			return tx.pg.row(`SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables WHERE relname = 'calls'`, nil, &n)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	st, err := db.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Before <= 0 || st.After <= 0 {
		t.Fatalf("Compact = %+v: want the database's size before and after", st)
	}
	if due, err := db.CompactionDue(); err != nil || due {
		t.Fatalf("CompactionDue after Compact = %v, %v; want false", due, err)
	}
	// The statistics are sent when a transaction ends, and read from a snapshot: wait a
	// little for VACUUM's.
	deadline := time.Now().Add(5 * time.Second)
	for dead() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := dead(); n != 0 {
		t.Errorf("calls has %d dead row versions after Compact", n)
	}
	// A mark made after Compact read the marks is not cleared by it: the next one owes it.
	if err := db.Write(ctx, func(tx *Tx) error { return tx.MarkCompactionDue() }); err != nil {
		t.Fatal(err)
	}
	_, marks, err := db.pg.compactionDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.MarkCompactionDue() }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pg.pool.Exec(ctx, `DELETE FROM store_state WHERE key = $1 AND n = $2`, pgStateCompactionDue, marks); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.CompactionDue(); !due {
		t.Fatal("a mark made after a compaction read the marks was cleared")
	}
}

// dataDirHolds answers, for each needle, the files under the tests' PostgreSQL data
// directory (tables, indexes, WAL, ...) whose bytes hold it, relative to it. The server
// writes its pages at a checkpoint: run one first to see what reached disk.
func dataDirHolds(t *testing.T, needles ...[]byte) [][]string {
	t.Helper()
	root := filepath.Join(pgServer(t).Dir(), "data")
	where := make([][]string, len(needles))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed meanwhile (a WAL segment, a temp file)
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for i, needle := range needles {
			if bytes.Contains(b, needle) {
				rel, _ := filepath.Rel(root, path)
				where[i] = append(where[i], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return where
}

// checkpoint has the server write every dirty page to disk (and the WAL up to it).
func checkpoint(t *testing.T, dsn string) {
	t.Helper()
	if _, err := pgConn(t, dsn).Exec(context.Background(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
}

// The erasure test on PostgreSQL (issue 22's privacy section): a caller's and a customer's
// personal data (a caller's number, a landing page) never reach the data directory in plain
// text, not in the tables, not in the WAL; after a caller's erasure and a customer's purge,
// with their compaction (VACUUM) and a checkpoint, the byte search over the data directory
// finds neither, and the sealed copies the WAL still holds of the purged customer's
// fields do not open once its key is destroyed.
func TestPostgresErasureLeavesNothingReadable(t *testing.T) {
	keys, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dsn := newPostgresDatabase(t, false)
	ctx := context.Background()
	db, err := OpenPostgres(ctx, dsn, WithFieldKeys(keyringFields{keys}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Needles no other test writes: the server is shared by the test binary.
	tag := fmt.Sprintf("%08d", rand.IntN(1e8))
	type subject struct {
		customer, caller, landing, control string
		calls                              []string
	}
	subjects := []*subject{
		{customer: "acme", caller: "+3161" + tag[:7], landing: "https://erasure-" + tag + ".example/offer-for-jansen"},
		{customer: "gone", caller: "+3162" + tag[:7], landing: "https://purge-" + tag + ".example/order-of-de-vries"},
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for ci, s := range subjects {
		// What is not personal stays in plain text: the control that the search sees the
		// tables and the WAL at all.
		s.control = "control-" + s.customer + "-" + tag
		err := db.Write(ctx, func(tx *Tx) error {
			if err := tx.CreateCustomer(&Customer{ID: s.customer, Name: s.customer, SiteKey: s.customer + "-" + tag, Status: StatusEnded, Created: t0}); err != nil {
				return err
			}
			for i := range 3 {
				at := t0.Add(time.Duration(ci*10+i) * time.Minute)
				sess := Session{ID: testCallID(at, ci*10+i), CustomerID: s.customer, Created: at, Channel: "Google Ads",
					LandingPage: s.landing + "?gclid=x" + fmt.Sprint(i), ReferrerHost: "www.google.com", UTMCampaign: s.control}
				if err := tx.PutSession(&sess); err != nil {
					return err
				}
				c := Call{ID: testCallID(at.Add(time.Second), ci*10+i), CustomerID: s.customer, Dialled: "+31850000001",
					Caller: s.caller, CallerPseudonym: "ps-" + s.customer, SessionID: sess.ID, Channel: "Google Ads",
					LandingPage: sess.LandingPage, Keyword: s.control, Start: at.Add(time.Second), Answer: at.Add(2 * time.Second),
					End: at.Add(time.Minute), Disposition: DispAnswered, TalkSeconds: 58}
				if err := tx.PutCall(&c); err != nil {
					return err
				}
				s.calls = append(s.calls, c.ID)
			}
			// Another caller of the customer, kept by the caller's erasure.
			return tx.PutCall(&Call{ID: testCallID(t0.Add(time.Hour), ci*10+9), CustomerID: s.customer, Dialled: "+31850000001",
				Caller: "+31699999999", CallerPseudonym: "ps-other", Start: t0.Add(time.Hour), End: t0.Add(time.Hour + time.Minute),
				Disposition: DispAnswered, TalkSeconds: 60})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The personal needles, and the controls: what is not personal stays in plain text, in a
	// table's file and in the WAL (the search sees them, or it sees nothing).
	var needles [][]byte
	for _, s := range subjects {
		for _, n := range []string{s.caller, s.caller[1:], s.landing, "erasure-" + tag, "purge-" + tag, "jansen", "de-vries"} {
			needles = append(needles, []byte(n))
		}
	}
	controls := len(needles)
	for _, s := range subjects {
		needles = append(needles, []byte(s.control))
	}
	personal := func(when string) {
		t.Helper()
		checkpoint(t, dsn)
		where := dataDirHolds(t, needles...)
		for i, w := range where[:controls] {
			if len(w) > 0 {
				t.Errorf("%s: %q is in plain text in %v", when, needles[i], w)
			}
		}
		for i, w := range where[controls:] {
			if i > 0 && when != "written" {
				continue // only acme's stays in a live row: the purged customer's may or may not
			}
			if !slices.ContainsFunc(w, func(p string) bool { return strings.HasPrefix(p, "base/") }) ||
				!slices.ContainsFunc(w, func(p string) bool { return strings.HasPrefix(p, "pg_wal/") }) {
				t.Fatalf("%s: the control %q is in %v: want a table's file and the WAL", when, needles[controls+i], w)
			}
		}
	}
	personal("written")

	// The sealed caller of the customer to be purged, as its rows hold it.
	var sealed []byte
	conn := pgConn(t, dsn)
	if err := conn.QueryRow(ctx, `SELECT caller FROM calls WHERE id = $1`, subjects[1].calls[0]).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) < 20 || sealed[0] != sealGCM {
		t.Fatalf("the caller is stored as %x, want sealed", sealed)
	}

	// A caller's erasure, as package privacy does it: the calls go, then the compaction.
	err = db.Write(ctx, func(tx *Tx) error {
		for _, id := range subjects[0].calls {
			if _, _, err := tx.DeleteCall(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if due, err := db.CompactionDue(); err != nil || !due {
		t.Fatalf("CompactionDue after a caller's erasure = %v, %v", due, err)
	}
	if _, err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := db.CallsOfCaller("acme", "ps-acme"); err != nil || len(got) != 0 {
		t.Fatalf("the erased caller's calls: %v %v", got, err)
	}
	if got, err := db.CallsOfCaller("acme", "ps-other"); err != nil || len(got) != 1 {
		t.Fatalf("the other caller's calls: %v %v", got, err)
	}
	personal("after the caller's erasure")

	// A customer's erasure, as package privacy does it: the key first, then the records,
	// then the compaction.
	if err := keys.Destroy("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PurgeCustomer(ctx, "gone", PurgeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	personal("after the customer's purge")
	// The WAL still holds the purged customer's sealed caller (its inserts): unreadable now.
	where := dataDirHolds(t, sealed)[0]
	inWAL := slices.ContainsFunc(where, func(p string) bool { return strings.HasPrefix(p, "pg_wal/") })
	err = db.View(func(tx *Tx) error {
		_, err := tx.pg.open("calls.caller", "gone", subjects[1].calls[0], sealed)
		return err
	})
	if !errors.Is(err, ErrNoFieldKey) {
		t.Fatalf("the purged customer's sealed caller opened after its key was destroyed: %v", err)
	}
	t.Logf("the sealed caller of the purged customer is still in %v (in the WAL: %v); it does not open: %v", where, inWAL, err)
}

// Compact as a database user that is no superuser: it vacuums the tables it owns, and fails,
// naming it, on a table it may not vacuum (VACUUM itself would pass over it with a warning).
func TestPostgresCompactNeedsTheTablesOwner(t *testing.T) {
	ctx := context.Background()
	dsn := newPostgresDatabase(t, false)
	admin := pgConn(t, dsn)
	role := fmt.Sprintf("node_%d", rand.IntN(1e9))
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE format('ALTER TABLE %I OWNER TO `+role+`', r.tablename);
		END LOOP; END $$`); err != nil {
		t.Fatal(err)
	}
	db, err := OpenPostgres(ctx, strings.Replace(dsn, "postgres@", role+"@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fillCalls(t, db, 10)
	if _, err := db.Compact(ctx); err != nil {
		t.Fatalf("Compact as the tables' owner: %v", err)
	}
	if _, err := admin.Exec(ctx, `CREATE TABLE someone_elses (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Compact(ctx); err == nil || !strings.Contains(err.Error(), "someone_elses") {
		t.Fatalf("Compact with a table of another user: %v, want an error naming it", err)
	}
}

// BenchmarkPurgeCustomer: the erasure of a customer with 5000 sessions and assignments and
// 2000 completed calls, then the compaction, on the driver TRACKLINE_TEST_STORE names (a
// fresh bbolt file or PostgreSQL database each time); purge-ms and compact-ms per run.
func BenchmarkPurgeCustomer(b *testing.B) {
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var purge, compact time.Duration
	for range b.N {
		b.StopTimer()
		var db *DB
		if testDriver(b) == "postgres" {
			db = openPostgresTest(b)
		} else {
			var err error
			if db, err = Open(filepath.Join(b.TempDir(), "trackline.db")); err != nil {
				b.Fatal(err)
			}
		}
		for ci, cu := range []string{"gone", "kept"} {
			if err := db.Write(ctx, func(tx *Tx) error {
				return tx.CreateCustomer(&Customer{ID: cu, Name: cu, SiteKey: cu + "-site-key", Status: StatusEnded, Created: t0})
			}); err != nil {
				b.Fatal(err)
			}
			for chunk := 0; chunk < 5000; chunk += 500 {
				err := db.Write(ctx, func(tx *Tx) error {
					for i := chunk; i < chunk+500; i++ {
						at := t0.Add(time.Duration(i) * time.Second)
						s := Session{ID: testCallID(at, ci*100000+i), CustomerID: cu, Created: at, Channel: "Google Ads", LandingPage: "https://" + cu + ".example/p?x=1"}
						if err := tx.PutSession(&s); err != nil {
							return err
						}
						if err := tx.PutAssignment(&Assignment{CustomerID: cu, Number: "+3185000000" + fmt.Sprint(i%10), SessionID: s.ID, From: at, Until: at.Add(time.Minute)}); err != nil {
							return err
						}
						if i%5 < 2 {
							c := Call{ID: testCallID(at.Add(time.Millisecond), ci*100000+i), CustomerID: cu, Dialled: "+31850000000", Caller: "+3161234" + fmt.Sprintf("%04d", i),
								CallerPseudonym: fmt.Sprint("p", i), SessionID: s.ID, Channel: "Google Ads", LandingPage: s.LandingPage, Start: at, End: at.Add(time.Minute),
								Disposition: DispAnswered, TalkSeconds: 60}
							if err := tx.PutCall(&c); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		start := time.Now()
		res, err := db.PurgeCustomer(ctx, "gone", PurgeOptions{})
		purge += time.Since(start)
		if err != nil || res.Sessions != 5000 || res.Calls != 2000 {
			b.Fatalf("PurgeCustomer = %+v, %v", res, err)
		}
		start = time.Now()
		if _, err := db.Compact(ctx); err != nil {
			b.Fatal(err)
		}
		compact += time.Since(start)
		b.StopTimer()
		db.Close()
	}
	b.ReportMetric(float64(purge.Milliseconds())/float64(b.N), "purge-ms")
	b.ReportMetric(float64(compact.Milliseconds())/float64(b.N), "compact-ms")
}
