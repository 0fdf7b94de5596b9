package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Migration of a bbolt store into PostgreSQL (`trackline migrate`, docs/cluster.md).
//
// CopyTo reads a bbolt store (a stopped switch's file, or a copy) through the same typed
// operations the switch uses and writes every record into an empty PostgreSQL store, in
// batches of copyBatch records a transaction; then it reads everything back from
// PostgreSQL and compares it with the source, record by record, so that a migration that
// reports success copied every record exactly (times to the microsecond: PostgreSQL's
// timestamptz keeps no finer, and nothing the switch does depends on finer ones).
//
// Calls are copied as they are, without what the switch's PutCall does with a call: the
// source's usage counters and daily rollups are copied as the source has them (they also
// count calls erased since, which no call would bring back), and no webhook event is made: the
// source's webhook messages and deliveries are copied as they are (pg_migrate_webhooks.go).
// Personal fields are sealed with the destination's field keys (WithFieldKeys), landing
// pages in the rollups too. The audit log keeps its entries' ids.
//
// It refuses a source that holds records the PostgreSQL backend does not keep (migrateKinds,
// migrateUsersKinds and migrateWebhooksKinds list what it copies), naming the bucket and the
// count, rather than leave them behind.

// copyBatch is how many records one transaction of the copy writes.
const copyBatch = 500

// MigrateReport counts the records copied, by kind.
type MigrateReport map[string]int

// ErrNotEmpty is returned by CopyTo when the destination already holds customers.
var ErrNotEmpty = errors.New("store: the destination is not empty")

// migrateKinds are the buckets CopyTo copies (the index buckets are rebuilt by the
// destination's writes): any other bucket with records stops the migration.
var migrateKinds = map[string]string{
	string(bucketCustomers):     "customers",
	string(bucketSiteKeys):      "", // index of customers
	string(bucketChannels):      "channels",
	string(bucketNumbers):       "numbers",
	string(bucketSessions):      "sessions",
	string(bucketSessByCust):    "", // index of sessions
	string(bucketStats):         "stats",
	string(bucketAssignByTime):  "assignments",
	string(bucketPurged):        "purged_customers",
	string(bucketCalls):         "calls",
	string(bucketCallsByCust):   "", // index of calls
	string(bucketCallsActive):   "", // index of calls
	string(bucketCallsByCaller): "", // index of calls (by their pseudonyms)
	// Which sessions led to a call: PostgreSQL reads it from the calls (ExpireSessions).
	string(bucketSessCalled):  "",
	string(bucketRecordings):  "recordings",
	string(bucketTokens):      "tokens",
	string(bucketTokensByCu):  "", // index of tokens
	string(bucketAgentTokens): "tokens",
	string(bucketAgentByCu):   "", // index of agent tokens
	string(bucketAudit):       "audit_entries",
	string(bucketAuditByCust): "", // index of the audit log
	string(bucketUsage):       "usage_months",
	string(bucketRollups):     "rollup_days",
	// The schema version (the destination has its own) and the lifecycle state: the
	// callers' index mark is copied (store_state); a compaction due is the source file's.
	string(bucketMeta): "",
}

// CopyTo copies db, a bbolt store, into dst, an empty PostgreSQL store, and verifies the
// copy. progress, if set, is told of each batch written.
func (db *DB) CopyTo(ctx context.Context, dst *DB, progress func(kind string, n int)) (MigrateReport, error) {
	if db.pg != nil || dst.pg == nil {
		return nil, errors.New("store: migrate copies a bbolt store into a PostgreSQL one")
	}
	if progress == nil {
		progress = func(string, int) {}
	}
	if err := db.migratable(); err != nil {
		return nil, err
	}
	// The endpoints' secrets: sealed on PostgreSQL with the destination's sealer, which also
	// opens the source's sealed ones (the same customers' keys) when the source has none.
	if db.outbox.sealer.Load() == nil {
		if s := dst.outbox.sealer.Load(); s != nil {
			db.outbox.sealer.Store(s)
		}
	}
	if dst.outbox.sealer.Load() == nil {
		n := 0
		if err := db.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketEndpoints).Stats().KeyN; return nil }); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("store: migrate: the source has %d webhook endpoints and the destination no secret sealer: their secrets would be kept in the clear (SealEndpointSecrets)", n)
		}
	}
	var existing []Customer
	if err := dst.View(func(tx *Tx) (err error) { existing, err = tx.Customers(); return err }); err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("%w: it has %d customers", ErrNotEmpty, len(existing))
	}
	src, err := db.readAll()
	if err != nil {
		return nil, err
	}
	rep := MigrateReport{}
	w := &migrateWriter{ctx: ctx, dst: dst, rep: rep, progress: progress}
	for i := range src.customers {
		c := src.customers[i]
		w.add("customers", func(tx *Tx) error { return tx.CreateCustomer(&c) })
	}
	for _, id := range src.purged {
		w.add("purged_customers", func(tx *Tx) error { return tx.pg.putPurged(id.ID, id.At) })
	}
	for i := range src.channels {
		ch := src.channels[i]
		w.add("channels", func(tx *Tx) error { return tx.PutChannel(&ch) })
	}
	for i := range src.numbers {
		n := src.numbers[i]
		w.add("numbers", func(tx *Tx) error { return tx.PutNumber(&n) })
	}
	for i := range src.sessions {
		s := src.sessions[i]
		w.add("sessions", func(tx *Tx) error { return tx.PutSession(&s) })
	}
	for _, id := range src.statsOrder {
		st := src.stats[id]
		w.add("stats", func(tx *Tx) error {
			return tx.AddStats(id, st.SessionsTotal, st.Exhaustions, st.PeakAssigned)
		})
	}
	for i := range src.assignments {
		a := src.assignments[i]
		w.add("assignments", func(tx *Tx) error { return tx.PutAssignment(&a) })
	}
	for i := range src.calls {
		c := src.calls[i]
		w.add("calls", func(tx *Tx) error { return tx.pg.copyCall(&c) })
	}
	// The web app's users with their invitations and sessions, the Google Ads settings and
	// the calls' upload states (pg_migrate_users.go), after the customers and the calls.
	src.users.copyTo(w.add)
	// The webhooks (pg_migrate_webhooks.go): endpoints, messages, deliveries.
	src.webhooks.copyTo(w.add)
	for i := range src.recordings {
		r := src.recordings[i]
		w.add("recordings", func(tx *Tx) error { return tx.PutRecording(&r) })
	}
	for _, mt := range src.tokens {
		w.add("tokens", func(tx *Tx) error {
			hash, err := hex.DecodeString(mt.Hash)
			if err != nil || len(hash) != 32 {
				return fmt.Errorf("token %q: malformed hash", mt.Token.ID)
			}
			tok := mt.Token
			tok.Kind = mt.Kind
			return tx.PutToken([32]byte(hash), &tok)
		})
	}
	for _, u := range src.usage {
		w.add("usage_months", func(tx *Tx) error { return tx.pg.copyUsage(u) })
	}
	for _, id := range src.rollupOrder {
		for i := range src.rollups[id] {
			d := &src.rollups[id][i]
			w.add("rollup_days", func(tx *Tx) error { return tx.pg.copyRollupDay(id, d) })
		}
	}
	for i := range src.audit {
		e := &src.audit[i]
		w.add("audit_entries", func(tx *Tx) error { return tx.pg.copyAudit(e) })
	}
	for _, key := range src.state {
		w.add("state", func(tx *Tx) error { return tx.pg.setState(key) })
	}
	if err := w.flush(); err != nil {
		return rep, err
	}
	if err := dst.Write(ctx, func(tx *Tx) error { return tx.pg.auditCopied() }); err != nil {
		return rep, fmt.Errorf("store: migrate: %w", err)
	}
	if err := w.flush(); err != nil {
		return rep, err
	}
	got, err := dst.readAll()
	if err != nil {
		return rep, fmt.Errorf("store: migrate: read the copy back: %w", err)
	}
	if err := src.same(got); err != nil {
		return rep, fmt.Errorf("store: migrate: the copy differs from the source: %w", err)
	}
	return rep, nil
}

// migratable checks that every bucket with records is one CopyTo copies.
func (db *DB) migratable() error {
	var missing []string
	err := db.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if _, ok := migrateKinds[string(name)]; ok {
				return nil
			}
			if _, ok := migrateUsersKinds[string(name)]; ok {
				return nil
			}
			if _, ok := migrateWebhooksKinds[string(name)]; ok {
				return nil
			}
			if n := b.Stats().KeyN; n > 0 {
				missing = append(missing, fmt.Sprintf("%s (%d)", name, n))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("store: migrate: the PostgreSQL backend does not keep these records yet: %v", missing)
	}
	return nil
}

// migrateWriter writes the copy in batches of copyBatch writes a transaction.
type migrateWriter struct {
	ctx      context.Context
	dst      *DB
	rep      MigrateReport
	progress func(string, int)
	fns      []func(*Tx) error
	kinds    []string
	err      error
}

func (w *migrateWriter) add(kind string, fn func(*Tx) error) {
	if w.err != nil {
		return
	}
	w.fns, w.kinds = append(w.fns, fn), append(w.kinds, kind)
	if len(w.fns) >= copyBatch {
		w.err = w.flush()
	}
}

func (w *migrateWriter) flush() error {
	if w.err != nil || len(w.fns) == 0 {
		return w.err
	}
	fns := w.fns
	err := w.dst.Write(w.ctx, func(tx *Tx) error {
		for _, fn := range fns {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	counts := map[string]int{}
	for _, k := range w.kinds {
		counts[k]++
	}
	for k, n := range counts {
		w.rep[k] += n
		w.progress(k, w.rep[k])
	}
	w.fns, w.kinds = w.fns[:0], w.kinds[:0]
	return nil
}

// storeContents is every record CopyTo copies, read from one store in a fixed order.
type storeContents struct {
	customers   []Customer
	purged      []purgedID
	channels    []Channel
	numbers     []Number
	sessions    []Session
	stats       map[string]CustomerStats
	statsOrder  []string
	assignments []Assignment
	calls       []Call
	recordings  []Recording
	tokens      []migrateToken
	usage       []migrateUsage
	rollups     map[string][]DayStats
	rollupOrder []string
	audit       []AuditEntry // oldest first
	state       []string     // store_state's keys; bbolt's meta marks
	users       *usersRecords
	webhooks    *webhooksRecords
}

// migrateToken is a token with its kind and the hash of its secret (hex).
type migrateToken struct {
	Kind  TokenKind `json:"kind"`
	Hash  string    `json:"hash"`
	Token Token     `json:"token"`
}

type purgedID struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// readAll reads every record CopyTo copies, customer by customer.
func (db *DB) readAll() (*storeContents, error) {
	c := &storeContents{stats: map[string]CustomerStats{}, rollups: map[string][]DayStats{}}
	err := db.View(func(tx *Tx) error {
		var err error
		if c.customers, err = tx.Customers(); err != nil {
			return err
		}
		if err := tx.readLifecycle(c); err != nil {
			return err
		}
		if c.users, err = tx.readUsersRecords(); err != nil {
			return err
		}
		sort.Slice(c.customers, func(i, j int) bool { return c.customers[i].ID < c.customers[j].ID })
		if c.webhooks, err = tx.readWebhooks(c.customers); err != nil {
			return err
		}
		if c.purged, err = tx.purgedIDs(); err != nil {
			return err
		}
		for _, cu := range c.customers {
			chs, err := tx.Channels(cu.ID)
			if err != nil {
				return err
			}
			c.channels = append(c.channels, chs...)
			for before := ""; ; {
				page, err := tx.SessionsOf(cu.ID, before, 1000)
				if err != nil {
					return err
				}
				c.sessions = append(c.sessions, page...)
				if len(page) < 1000 {
					break
				}
				before = page[len(page)-1].ID
			}
			st, err := tx.Stats(cu.ID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if st != (CustomerStats{}) {
				c.stats[cu.ID] = st
				c.statsOrder = append(c.statsOrder, cu.ID)
			}
			err = tx.Assignments(cu.ID, time.Time{}, time.Time{}, func(a Assignment) bool {
				c.assignments = append(c.assignments, a)
				return true
			})
			if err != nil {
				return err
			}
		}
		return tx.Numbers(func(n Number) error { c.numbers = append(c.numbers, n); return nil })
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(c.numbers, func(i, j int) bool { return c.numbers[i].E164 < c.numbers[j].E164 })
	return c, nil
}

// readLifecycle reads the calls, recordings, tokens, usage, rollups, audit log and state
// into c, each in the order both backends list it.
func (t *Tx) readLifecycle(c *storeContents) error {
	var err error
	if t.pg != nil {
		if c.calls, err = t.pg.allCalls(); err != nil {
			return err
		}
		if c.recordings, err = t.pg.allRecordings(); err != nil {
			return err
		}
		if c.tokens, err = t.pg.allTokens(); err != nil {
			return err
		}
		for i := range c.tokens {
			c.tokens[i].Kind = c.tokens[i].Token.Kind
		}
		if c.usage, err = t.pg.allUsage(); err != nil {
			return err
		}
		if c.rollupOrder, err = t.pg.rollupCustomers(); err != nil {
			return err
		}
		if c.state, err = t.pg.stateKeys(); err != nil {
			return err
		}
	} else {
		if err := t.boltLifecycle(c); err != nil {
			return err
		}
	}
	for _, id := range c.rollupOrder {
		days, err := t.Rollups(id, time.Unix(0, 0).UTC(), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
		if err != nil {
			return err
		}
		c.rollups[id] = days
	}
	for before := ""; ; {
		page, next, err := t.AuditLog(AuditFilter{Before: before, Limit: 1000})
		if err != nil {
			return err
		}
		c.audit = append(c.audit, page...)
		if next == "" {
			break
		}
		before = next
	}
	slices.Reverse(c.audit)
	return nil
}

// boltLifecycle is readLifecycle's reading of a bbolt store's buckets.
func (t *Tx) boltLifecycle(c *storeContents) error {
	err := t.tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
		var call Call
		if err := json.Unmarshal(v, &call); err != nil {
			return fmt.Errorf("decode call %q: %w", k, err)
		}
		c.calls = append(c.calls, call)
		return nil
	})
	if err != nil {
		return err
	}
	err = t.tx.Bucket(bucketRecordings).ForEach(func(k, v []byte) error {
		var r Recording
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode recording %q: %w", k, err)
		}
		c.recordings = append(c.recordings, r)
		return nil
	})
	if err != nil {
		return err
	}
	for _, kind := range tokenKinds {
		byHash, _, _ := kind.buckets()
		err := t.tx.Bucket(byHash).ForEach(func(k, v []byte) error {
			var tok Token
			if err := json.Unmarshal(v, &tok); err != nil {
				return fmt.Errorf("decode %v %x: %w", kind, k, err)
			}
			tok.Kind = kind
			c.tokens = append(c.tokens, migrateToken{Kind: kind, Hash: hex.EncodeToString(k), Token: tok})
			return nil
		})
		if err != nil {
			return err
		}
	}
	err = t.tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
		customer, month, ok := bytes.Cut(k, []byte{0})
		if !ok || len(v) != usageLen {
			return fmt.Errorf("usage %q: malformed", k)
		}
		c.usage = append(c.usage, migrateUsage{CustomerID: string(customer), Month: string(month),
			Calls: binary.BigEndian.Uint64(v[usageCalls:]), TalkMs: binary.BigEndian.Uint64(v[usageTalk:]),
			Sessions: binary.BigEndian.Uint64(v[usageSessions:]), Frozen: binary.BigEndian.Uint64(v[usageFlags:])&usageFrozen != 0})
		return nil
	})
	if err != nil {
		return err
	}
	err = t.tx.Bucket(bucketRollups).ForEach(func(k, _ []byte) error {
		customer, _, ok := bytes.Cut(k, []byte{0})
		if !ok {
			return fmt.Errorf("rollup key %q: malformed", k)
		}
		if n := len(c.rollupOrder); n == 0 || c.rollupOrder[n-1] != string(customer) {
			c.rollupOrder = append(c.rollupOrder, string(customer))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if t.tx.Bucket(bucketMeta).Get(keyCallersIndexed) != nil {
		c.state = append(c.state, pgStateCallersIndexed)
	}
	return nil
}

// purgedIDs lists the ids of deleted customers and when they were deleted.
func (t *Tx) purgedIDs() ([]purgedID, error) {
	if t.pg != nil {
		return t.pg.purgedIDs()
	}
	var out []purgedID
	err := t.tx.Bucket(bucketPurged).ForEach(func(k, v []byte) error {
		p := purgedID{ID: string(k)}
		if len(v) == 8 {
			p.At = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// same compares two stores' contents, each record with its times to the microsecond.
func (c *storeContents) same(o *storeContents) error {
	cmp := func(kind string, a, b any) error {
		ja, jb := normalJSON(a), normalJSON(b)
		if !bytes.Equal(ja, jb) {
			return fmt.Errorf("%s: source %s, copy %s", kind, ja, jb)
		}
		return nil
	}
	for _, x := range []struct {
		kind string
		a, b any
		n, m int
	}{
		{"customers", c.customers, o.customers, len(c.customers), len(o.customers)},
		{"purged_customers", c.purged, o.purged, len(c.purged), len(o.purged)},
		{"channels", c.channels, o.channels, len(c.channels), len(o.channels)},
		{"numbers", c.numbers, o.numbers, len(c.numbers), len(o.numbers)},
		{"sessions", c.sessions, o.sessions, len(c.sessions), len(o.sessions)},
		{"stats", c.stats, o.stats, len(c.stats), len(o.stats)},
		{"assignments", c.assignments, o.assignments, len(c.assignments), len(o.assignments)},
		{"calls", c.calls, o.calls, len(c.calls), len(o.calls)},
		{"recordings", c.recordings, o.recordings, len(c.recordings), len(o.recordings)},
		{"tokens", c.tokens, o.tokens, len(c.tokens), len(o.tokens)},
		{"usage_months", c.usage, o.usage, len(c.usage), len(o.usage)},
		{"rollup_customers", c.rollupOrder, o.rollupOrder, len(c.rollupOrder), len(o.rollupOrder)},
		{"rollups", c.rollups, o.rollups, len(c.rollups), len(o.rollups)},
		{"audit_entries", c.audit, o.audit, len(c.audit), len(o.audit)},
		{"state", c.state, o.state, len(c.state), len(o.state)},
		{"webhook_endpoints", c.webhooks.endpoints, o.webhooks.endpoints, len(c.webhooks.endpoints), len(o.webhooks.endpoints)},
		{"webhook_messages", c.webhooks.messages, o.webhooks.messages, len(c.webhooks.messages), len(o.webhooks.messages)},
		{"webhook_deliveries", c.webhooks.deliveries, o.webhooks.deliveries, len(c.webhooks.deliveries), len(o.webhooks.deliveries)},
		{"webhook_pool_exhausted", c.webhooks.exhausted, o.webhooks.exhausted, len(c.webhooks.exhausted), len(o.webhooks.exhausted)},
	} {
		if x.n != x.m {
			return fmt.Errorf("%s: %d in the source, %d in the copy", x.kind, x.n, x.m)
		}
		ra, rb := reflect.ValueOf(x.a), reflect.ValueOf(x.b)
		if ra.Kind() == reflect.Slice {
			for i := 0; i < ra.Len(); i++ {
				if err := cmp(x.kind, ra.Index(i).Interface(), rb.Index(i).Interface()); err != nil {
					return err
				}
			}
			continue
		}
		if err := cmp(x.kind, x.a, x.b); err != nil {
			return err
		}
	}
	return c.users.same(o.users)
}

// normalJSON is v as JSON with every time.Time in it in UTC, to the microsecond.
func normalJSON(v any) []byte {
	rv := reflect.New(reflect.TypeOf(v)).Elem()
	rv.Set(reflect.ValueOf(v))
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(deepCopyTimes(rv))
	b, err := json.Marshal(cp.Interface())
	if err != nil {
		return []byte(err.Error())
	}
	return b
}

var timeType = reflect.TypeOf(time.Time{})

// deepCopyTimes copies v, with its time.Time values (in structs, slices, maps and pointers)
// truncated to the microsecond and in UTC.
func deepCopyTimes(v reflect.Value) reflect.Value {
	switch {
	case v.Type() == timeType:
		t := v.Interface().(time.Time)
		if !t.IsZero() {
			t = t.Truncate(time.Microsecond).UTC()
		}
		return reflect.ValueOf(t)
	case v.Kind() == reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.NumField(); i++ {
			if out.Field(i).CanSet() {
				out.Field(i).Set(deepCopyTimes(v.Field(i)))
			}
		}
		return out
	case v.Kind() == reflect.Slice && !v.IsNil():
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopyTimes(v.Index(i)))
		}
		return out
	case v.Kind() == reflect.Map && !v.IsNil():
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			out.SetMapIndex(k, deepCopyTimes(v.MapIndex(k)))
		}
		return out
	case v.Kind() == reflect.Pointer && !v.IsNil():
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopyTimes(v.Elem()))
		return out
	}
	return v
}
