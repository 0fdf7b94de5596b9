package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lifecycleFixture writes two customers, "gone" and "kept", each with numbers (one
// quarantined), a channel, sessions (one of them called), assignments, calls (one with a
// recording, one active when active is set), a token and audit entries.
func lifecycleFixture(t *testing.T, db *DB, t0 time.Time, activeCall bool) {
	t.Helper()
	ctx := context.Background()
	for ci, cu := range []string{"gone", "kept"} {
		err := db.Write(ctx, func(tx *Tx) error {
			c := Customer{ID: cu, Name: cu, Status: StatusActive, SiteKey: cu + "-site-key", Created: t0}
			if err := tx.CreateCustomer(&c); err != nil {
				return err
			}
			if err := tx.PutChannel(&Channel{CustomerID: cu, ID: "flyer", Name: "Flyer"}); err != nil {
				return err
			}
			for i := range 4 {
				n := Number{E164: fmt.Sprintf("+318500%d%04d", ci, i), CustomerID: cu, Kind: KindPool, State: NumberAvailable, Created: t0}
				if i == 3 {
					n.State, n.QuarantinedUntil, n.Porting = NumberQuarantined, t0.AddDate(0, 6, 0), true
				}
				if err := tx.PutNumber(&n); err != nil {
					return err
				}
			}
			h := sha256.Sum256([]byte("tlc_" + cu))
			if err := tx.PutToken(h, &Token{Kind: TokenAPI, ID: "tok-" + cu, CustomerID: cu, Created: t0}); err != nil {
				return err
			}
			ah := sha256.Sum256([]byte("tla_" + cu))
			if err := tx.PutToken(ah, &Token{Kind: TokenAgent, ID: "agent-" + cu, CustomerID: cu, Groups: []string{"sales"}, Created: t0}); err != nil {
				return err
			}
			return tx.AppendAudit(&AuditEntry{Time: t0, Actor: "operator", Action: "customer.create", CustomerID: cu})
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 7 {
			at := t0.Add(time.Duration(i) * time.Hour)
			s := Session{ID: testCallID(at, ci*100+i), CustomerID: cu, Created: at, Channel: "Direct", LandingPage: "https://" + cu + ".example/page"}
			num := fmt.Sprintf("+318500%d%04d", ci, i%3)
			err := db.Write(ctx, func(tx *Tx) error {
				if err := tx.PutSession(&s); err != nil {
					return err
				}
				return tx.PutAssignment(&Assignment{CustomerID: cu, Number: num, SessionID: s.ID, From: at, Until: at.Add(30 * time.Minute)})
			})
			if err != nil {
				t.Fatal(err)
			}
			if i < 3 {
				c := Call{ID: testCallID(at.Add(time.Minute), ci*100+i), CustomerID: cu, Dialled: num, Caller: "+3161234567" + fmt.Sprint(ci),
					CallerPseudonym: "ps" + fmt.Sprint(ci), SessionID: s.ID, Start: at.Add(time.Minute), End: at.Add(3 * time.Minute), Disposition: "answered", TalkSeconds: 90}
				if i == 2 && activeCall {
					c.End, c.Disposition, c.TalkSeconds = time.Time{}, "", 0
				}
				err := db.Write(ctx, func(tx *Tx) error {
					if i == 0 {
						c.RecordingID = "rec-" + cu
						if err := tx.PutRecording(&Recording{ID: c.RecordingID, CustomerID: cu, CallID: c.ID, Path: cu + "/x.wav"}); err != nil {
							return err
						}
					}
					return tx.PutCall(&c)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		// A recording record that no call names.
		if err := db.Write(ctx, func(tx *Tx) error {
			return tx.PutRecording(&Recording{ID: "orphan-" + cu, CustomerID: cu, CallID: "none", Path: cu + "/y.wav"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The web app: two users of each customer, one logged in and one invited, and an
	// operator looking at each customer.
	if !usersKept(t, db) {
		return
	}
	err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.PutUser(&User{ID: "op", Email: "Op@Switch.example", Role: RoleOperator, Created: t0}); err != nil {
			return err
		}
		for _, cu := range []string{"gone", "kept"} {
			ann := User{ID: "ann-" + cu, CustomerID: cu, Email: "ann@" + cu + ".example", Name: "Ann", Role: RoleAdmin,
				PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", TOTPSecret: []byte("totp-" + cu), Created: t0}
			bob := User{ID: "bob-" + cu, CustomerID: cu, Email: "bob@" + cu + ".example", Role: RoleMember, Created: t0}
			for _, u := range []*User{&ann, &bob} {
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			for _, s := range []AppSession{
				{IDHash: sha256.Sum256([]byte("session-ann-" + cu)), UserID: ann.ID, CustomerID: cu, CSRF: "csrf", Created: t0, Expires: t0.Add(time.Hour)},
				{IDHash: sha256.Sum256([]byte("session-op-" + cu)), UserID: "op", CustomerID: cu, CSRF: "csrf", Created: t0, Expires: t0.Add(time.Hour)},
			} {
				if err := tx.PutAppSession(&s); err != nil {
					return err
				}
			}
			inv := Invitation{TokenHash: sha256.Sum256([]byte("invite-bob-" + cu)), UserID: bob.ID, Expires: t0.Add(72 * time.Hour)}
			if err := tx.PutInvitation(&inv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// usersKept tells whether db keeps the web app's users. A store on PostgreSQL does once its
// backend implements them (PostgresMissing); until then the fixture has none, and says so.
func usersKept(t *testing.T, db *DB) bool {
	t.Helper()
	if db.pg == nil || pgImplemented["Tx.PutUser"] && pgImplemented["Tx.PutAppSession"] && pgImplemented["Tx.PutInvitation"] {
		return true
	}
	t.Log("the PostgreSQL store keeps no users yet (PostgresMissing): the fixture has none")
	return false
}

// purgedLeft tells whether where, a record rawHolds found, is one a purge leaves: an audit
// entry or the purged id.
func purgedLeft(where, id string) bool {
	return strings.HasPrefix(where, "audit") || where == `customers_purged/"`+id+`"` ||
		strings.HasPrefix(where, "customers_purged/("+id+",")
}

// rawHolds lists the buckets whose keys or values hold needle.
func rawHolds(t *testing.T, db *DB, needle string) []string {
	t.Helper()
	if db.pg != nil {
		return pgRawHolds(t, db, needle)
	}
	var where []string
	err := db.raw().View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(k, []byte(needle)) || bytes.Contains(v, []byte(needle)) {
					where = append(where, fmt.Sprintf("%s/%q", name, k))
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return where
}

func TestPurgeCustomer(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	lifecycleFixture(t, db, t0, false)
	keptBefore := rawHolds(t, db, "kept")

	res, err := db.PurgeCustomer(ctx, "gone", PurgeOptions{HoldQuarantined: true, Batch: 2, At: t0.AddDate(0, 3, 0)})
	if err != nil {
		t.Fatal(err)
	}
	want := PurgeResult{Calls: 3, Recordings: 2, Sessions: 7, Assignments: 7, Numbers: 3, HeldNumbers: 1, Channels: 1, Tokens: 2, Users: 2}
	users := usersKept(t, db)
	if !users {
		want.Users = 0
	}
	if res != want {
		t.Fatalf("PurgeCustomer = %+v, want %+v", res, want)
	}
	// Nothing of "gone" is left but its audit entries (ids only, pruned by their own
	// retention) and the purged id.
	for _, probe := range []string{"gone", "+31612345670", "gone.example"} {
		for _, w := range rawHolds(t, db, probe) {
			if !purgedLeft(w, "gone") {
				t.Errorf("%q is still in %s", probe, w)
			}
		}
	}
	// The operator and its session stay, looking at no customer now; kept's users stay.
	err = db.View(func(tx *Tx) error {
		if !users {
			return nil
		}
		s, err := tx.AppSession(sha256.Sum256([]byte("session-op-gone")))
		if err != nil || s.UserID != "op" || s.CustomerID != "" {
			return fmt.Errorf("the operator's session of gone: %+v %v", s, err)
		}
		if ops, err := tx.Users(""); err != nil || len(ops) != 1 {
			return fmt.Errorf("operators %+v %v", ops, err)
		}
		if users, err := tx.Users("kept"); err != nil || len(users) != 2 {
			return fmt.Errorf("kept's users %+v %v", users, err)
		}
		if _, err := tx.UserByEmail("ann@gone.example"); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("gone's user by email: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The quarantined number is held without an owner.
	err = db.View(func(tx *Tx) error {
		n, err := tx.Number("+31850000003")
		if err != nil {
			return err
		}
		if n.CustomerID != "" || n.State != NumberQuarantined || !n.Porting || !n.QuarantinedUntil.Equal(t0.AddDate(0, 6, 0)) {
			return fmt.Errorf("held number %+v", n)
		}
		if tx.HasNumber("+31850000000") {
			return errors.New("an available number of the purged customer is still tracked")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// "kept" is untouched.
	if got := rawHolds(t, db, "kept"); len(got) != len(keptBefore) {
		t.Fatalf("kept's records: %d after, %d before", len(got), len(keptBefore))
	}
	if u, err := db.Usage("kept", "2026-05"); err != nil || u.Sessions != 7 || u.Calls != 3 || u.TalkSeconds != 270 {
		t.Fatalf("kept's usage %+v %v", u, err)
	}
	// The id is not given again; a second purge finds nothing.
	err = db.Write(ctx, func(tx *Tx) error {
		return tx.CreateCustomer(&Customer{ID: "gone", SiteKey: "new-site-key", Status: StatusTrial})
	})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("create a purged id: %v, want ErrExists", err)
	}
	if _, err := db.PurgeCustomer(ctx, "gone", PurgeOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second purge: %v, want ErrNotFound", err)
	}
	if !db.Purged("gone") || db.Purged("kept") {
		t.Fatal("Purged does not tell the purged id")
	}
}

func TestPurgeCustomerWithoutHoldAndWithActiveCalls(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	lifecycleFixture(t, db, t0, true)
	if _, err := db.PurgeCustomer(ctx, "gone", PurgeOptions{}); !errors.Is(err, ErrActiveCalls) {
		t.Fatalf("purge with a call in progress: %v, want ErrActiveCalls", err)
	}
	// The call ends; now the purge goes through and keeps no number.
	err := db.Write(ctx, func(tx *Tx) error {
		calls, _, err := tx.Calls(CallFilter{CustomerID: "gone", Active: ptr(true)})
		if err != nil || len(calls) != 1 {
			return fmt.Errorf("active calls %v %v", calls, err)
		}
		c := calls[0]
		c.End, c.Disposition = c.Start.Add(time.Minute), "answered"
		return tx.PutCall(&c)
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.PurgeCustomer(ctx, "gone", PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Numbers != 4 || res.HeldNumbers != 0 {
		t.Fatalf("numbers deleted %d, held %d; want 4, 0", res.Numbers, res.HeldNumbers)
	}
	for _, w := range rawHolds(t, db, "+3185000000") {
		t.Errorf("a number of the trial is still in %s", w)
	}
}

func TestExpireSessions(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	lifecycleFixture(t, db, t0, false)
	// May is over: its session count is frozen before any session expires.
	if n, err := db.FreezeSessionCounts(ctx, "gone", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 1 {
		t.Fatalf("FreezeSessionCounts = %d %v, want 1 month", n, err)
	}
	if n, err := db.FreezeSessionCounts(ctx, "gone", time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 1 {
		t.Fatalf("FreezeSessionCounts again = %d %v, want 1 month (June; May is frozen)", n, err)
	}
	// Sessions 0-2 of each customer led to calls; 3-6 did not. Expire gone's sessions made
	// before hour 5: sessions 3 and 4 go, with their assignments.
	res, err := db.ExpireSessions(ctx, "gone", t0.Add(5*time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions != 2 || res.Assignments != 2 || len(res.SessionIDs) != 2 {
		t.Fatalf("ExpireSessions = %+v, want 2 sessions and 2 assignments", res)
	}
	var left []Session
	if err := db.View(func(tx *Tx) (err error) { left, err = tx.SessionsOf("gone", "", 100); return err }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 5 {
		t.Fatalf("%d sessions left, want 5", len(left))
	}
	for _, s := range left {
		for _, id := range res.SessionIDs {
			if s.ID == id {
				t.Fatalf("expired session %s is still listed", id)
			}
		}
	}
	for _, id := range res.SessionIDs {
		if w := rawHolds(t, db, id); len(w) != 0 {
			t.Errorf("expired session %s is still in %v", id, w)
		}
	}
	// The other customer's sessions are untouched; a second run deletes nothing.
	if err := db.View(func(tx *Tx) (err error) { left, err = tx.SessionsOf("kept", "", 100); return err }); err != nil || len(left) != 7 {
		t.Fatalf("kept has %d sessions (%v), want 7", len(left), err)
	}
	if res, err := db.ExpireSessions(ctx, "gone", t0.Add(5*time.Hour), 0); err != nil || res.Sessions+res.Assignments != 0 {
		t.Fatalf("second run: %+v %v", res, err)
	}
	// The month's usage still counts the expired sessions; an unfrozen month follows the
	// sessions that exist.
	if u, err := db.Usage("gone", "2026-05"); err != nil || u.Sessions != 7 {
		t.Fatalf("usage after expiry %+v %v", u, err)
	}
	if u, err := db.Usage("kept", "2026-05"); err != nil || u.Sessions != 7 {
		t.Fatalf("kept's usage %+v %v", u, err)
	}
	if u, err := db.Usage("gone", "2026-04"); err != nil || u.Sessions != 0 || u.Calls != 0 {
		t.Fatalf("April's usage %+v %v", u, err)
	}
}

func TestPruneAudit(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		e := AuditEntry{Time: t0.Add(time.Duration(i) * time.Hour), Actor: "operator", Action: "call.read", CustomerID: []string{"acme", ""}[i%2]}
		if err := db.Write(ctx, func(tx *Tx) error { return tx.AppendAudit(&e) }); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.PruneAudit(ctx, t0.Add(3*time.Hour), 2)
	if err != nil || n != 3 {
		t.Fatalf("PruneAudit = %d %v, want 3", n, err)
	}
	all, _, err := db.AuditLog(AuditFilter{})
	if err != nil || len(all) != 2 || !all[1].Time.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("left %+v %v", all, err)
	}
	acme, _, err := db.AuditLog(AuditFilter{CustomerID: "acme"})
	if err != nil || len(acme) != 1 || !acme[0].Time.Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("acme's index after pruning %+v %v", acme, err)
	}
}

func TestUsageCountsCallsOnce(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2026, 10, 31, 23, 59, 0, 0, time.UTC)
	c := Call{ID: testCallID(t0, 1), CustomerID: "acme", Dialled: "+31850000001", Start: t0}
	putCalls(t, db, c) // started in October
	c.Answer, c.End, c.TalkSeconds, c.Disposition = t0.Add(10*time.Second), t0.Add(130*time.Second), 120, "answered"
	putCalls(t, db, c) // ended in November: counted in its start month
	putCalls(t, db, c) // written again (e.g. its recording linked): not counted again
	oct, _ := db.Usage("acme", "2026-10")
	nov, _ := db.Usage("acme", "2026-11")
	if oct.Calls != 1 || oct.TalkSeconds != 120 || nov.Calls != 0 {
		t.Fatalf("October %+v, November %+v", oct, nov)
	}
}

// TestUsageBackfilled opens a file written before the usage counters existed: they are
// filled from its sessions and calls.
func TestUsageBackfilled(t *testing.T) {
	skipOnPostgres(t, "the usage counts built from an earlier build's file; PostgreSQL's exist from its first migration")
	path := t.TempDir() + "/trackline.db"
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	lifecycleFixture(t, db, t0, false)
	err = db.raw().Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsage, bucketSessCalled} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if u, err := db.Usage("gone", "2026-05"); err != nil || u.Sessions != 7 || u.Calls != 3 || u.TalkSeconds != 270 {
		t.Fatalf("usage of a file from before the counters %+v %v", u, err)
	}
	if w := rawHolds(t, db, "gone\x00"); len(w) == 0 {
		t.Fatal("nothing indexed")
	}
	var marks int
	db.raw().View(func(tx *bolt.Tx) error { marks = tx.Bucket(bucketSessCalled).Stats().KeyN; return nil })
	if marks != 6 {
		t.Fatalf("%d sessions marked as called, want 6", marks)
	}
}

// cutCtx is a context that ends at the n-th call of its Err: PurgeCustomer asks before each
// of its transactions, so that a purge can be cut short between any two of them.
type cutCtx struct {
	context.Context
	n    int
	done chan struct{}
}

func newCutCtx(n int) *cutCtx {
	return &cutCtx{Context: context.Background(), n: n, done: make(chan struct{})}
}

func (c *cutCtx) Done() <-chan struct{} { return c.done }

func (c *cutCtx) Err() error {
	if c.n--; c.n == 0 {
		close(c.done)
	}
	if c.n <= 0 {
		return context.Canceled
	}
	return nil
}

// A purge cut short at any of its transactions leaves the customer in place; run again, it
// deletes the rest, and the two runs together count what one whole run does.
func TestPurgeCustomerCutShort(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	want := PurgeResult{Calls: 3, Recordings: 2, Sessions: 7, Assignments: 7, Numbers: 3, HeldNumbers: 1, Channels: 1, Tokens: 2, Users: 2}
	opts := PurgeOptions{HoldQuarantined: true, Batch: 2, At: t0.AddDate(0, 3, 0)}
	for cut := 1; ; cut++ {
		db := openTest(t)
		lifecycleFixture(t, db, t0, false)
		if !usersKept(t, db) {
			want.Users = 0
		}
		first, err := db.PurgeCustomer(newCutCtx(cut), "gone", opts)
		if err == nil {
			if cut < 10 {
				t.Fatalf("the purge was whole after %d transactions, want more", cut-1)
			}
			if first != want {
				t.Fatalf("PurgeCustomer = %+v, want %+v", first, want)
			}
			return
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cut at %d: %v, want context.Canceled", cut, err)
		}
		if db.Purged("gone") {
			t.Fatalf("cut at %d: the customer is marked purged", cut)
		}
		if err := db.View(func(tx *Tx) error { _, err := tx.Customer("gone"); return err }); err != nil {
			t.Fatalf("cut at %d: the customer is gone: %v", cut, err)
		}
		rest, err := db.PurgeCustomer(context.Background(), "gone", opts)
		if err != nil {
			t.Fatalf("cut at %d, run again: %v", cut, err)
		}
		sum := PurgeResult{Calls: first.Calls + rest.Calls, Recordings: first.Recordings + rest.Recordings,
			Sessions: first.Sessions + rest.Sessions, Assignments: first.Assignments + rest.Assignments,
			Numbers: first.Numbers + rest.Numbers, HeldNumbers: first.HeldNumbers + rest.HeldNumbers,
			Channels: first.Channels + rest.Channels, Tokens: first.Tokens + rest.Tokens, Users: first.Users + rest.Users}
		if sum != want {
			t.Fatalf("cut at %d: %+v then %+v, together %+v; want %+v", cut, first, rest, sum, want)
		}
		for _, w := range rawHolds(t, db, "gone") {
			if !purgedLeft(w, "gone") {
				t.Fatalf("cut at %d: %q is still in %s", cut, "gone", w)
			}
		}
		db.Close()
	}
}
