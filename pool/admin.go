package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/trackline/trackline/internal/textutil"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/store"
)

var (
	customerIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	channelIDRe  = regexp.MustCompile(`[^a-z0-9]+`)
)

// ValidSiteKey reports whether s has the shape of a site key: 8-64 of A-Z, a-z, 0-9, '_' and
// '-'. Every public request is checked with it first.
func ValidSiteKey(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// CheckCustomer validates a customer's fields, naming the first wrong one.
func CheckCustomer(c *store.Customer) error {
	switch {
	case !customerIDRe.MatchString(c.ID):
		return invalid("id", "must be 1-32 of a-z, 0-9 and '-'")
	case strings.TrimSpace(c.Name) == "" || len(c.Name) > 200:
		return invalid("name", "must be 1-200 characters")
	case c.Status == store.StatusUnknown || c.Status > store.StatusEnded:
		return invalid("status", "must be trial, active or ended")
	case !ValidSiteKey(c.SiteKey):
		return invalid("site_key", "must be 8-64 of A-Z, a-z, 0-9, '_' and '-'")
	}
	if _, err := e164.ParseStyle(c.DisplayFormat); err != nil {
		return invalid("display_format", err.Error())
	}
	for i, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return invalid(fmt.Sprintf("allowed_origins[%d]", i), "must be an origin like https://www.example.nl")
		}
	}
	for i, l := range c.BusinessLines {
		if group, ok := strings.CutPrefix(l, "webrtc:"); ok {
			if !ValidAgentGroup(group) {
				return invalid(fmt.Sprintf("business_lines[%d]", i), "webrtc:<group>: the group must be 1-32 of a-z, 0-9, '_' and '-'")
			}
			continue
		}
		if !strings.HasPrefix(l, "sip:") && !strings.HasPrefix(l, "sips:") || len(l) > 256 || strings.ContainsAny(l, "\r\n\x00 ") {
			return invalid(fmt.Sprintf("business_lines[%d]", i), "must be a sip:, sips: or webrtc: URI without spaces or line breaks")
		}
	}
	for i, n := range c.DisplayNumbers {
		if !e164.Valid(n) {
			return invalid(fmt.Sprintf("display_numbers[%d]", i), "must be E.164, like +31852087972")
		}
	}
	switch {
	case c.RetentionMonths < 0 || c.RetentionMonths > 120:
		return invalid("retention_months", "must be 0 (the default) to 120")
	case c.RetentionAction > store.RetainExportThenDelete:
		return invalid("retention_action", "must be delete or export_then_delete")
	}
	return nil
}

// agentGroupRe is a browser agent group: the <group> of a business line "webrtc:<group>".
var agentGroupRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ValidAgentGroup reports whether g names a browser agent group.
func ValidAgentGroup(g string) bool { return agentGroupRe.MatchString(g) }

// CreateCustomer stores and indexes a new customer.
func (p *Pool) CreateCustomer(ctx context.Context, c store.Customer) (store.Customer, error) {
	if c.DisplayFormat == "" {
		c.DisplayFormat = "national"
	}
	if err := CheckCustomer(&c); err != nil {
		return c, err
	}
	if c.Created.IsZero() {
		c.Created = p.now().UTC()
	}
	p.lifecycleDefaults(&c)
	err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.CreateCustomer(&c) })
	if errors.Is(err, store.ErrExists) {
		return c, fmt.Errorf("%w: %v", ErrConflict, err)
	}
	if err != nil {
		return c, err
	}
	p.newCustomer(c, nil)
	return c, nil
}

// UpdateCustomer applies change to a customer, validates and stores the result. A change of
// status is a lifecycle transition (see lifecycle.go): its dates are set, and the numbers of
// a contract that ends are quarantined.
func (p *Pool) UpdateCustomer(ctx context.Context, id string, change func(*store.Customer)) (store.Customer, error) {
	cu, err := p.customerByID(id)
	if err != nil {
		return store.Customer{}, err
	}
	return p.update(ctx, cu, change, p.now())
}

// Channels lists a customer's channels in rule order.
func (p *Pool) Channels(customerID string) ([]store.Channel, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return nil, err
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	return slices.Clone(cu.channels), nil
}

// PutChannel creates or replaces a channel (matched by id; an empty id is made from the name).
func (p *Pool) PutChannel(ctx context.Context, customerID string, ch store.Channel) (store.Channel, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return ch, err
	}
	ch.CustomerID = customerID
	ch.Name = strings.TrimSpace(ch.Name)
	if ch.Name == "" || len(ch.Name) > 100 || strings.ContainsAny(ch.Name, "\r\n") {
		return ch, invalid("name", "must be 1-100 characters on one line")
	}
	if ch.ID == "" {
		ch.ID = strings.Trim(channelIDRe.ReplaceAllString(strings.ToLower(ch.Name), "-"), "-")
	}
	if !customerIDRe.MatchString(ch.ID) {
		return ch, invalid("id", "must be 1-32 of a-z, 0-9 and '-'")
	}
	for i, r := range ch.Rules {
		if !ValidRuleParam(r.Param) {
			return ch, invalid(fmt.Sprintf("rules[%d].param", i), "unknown parameter "+fmt.Sprintf("%q", r.Param))
		}
		if r.Pattern == "" || len(r.Pattern) > 256 {
			return ch, invalid(fmt.Sprintf("rules[%d].pattern", i), "must be 1-256 characters")
		}
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	chs := slices.Clone(cu.channels)
	if i := slices.IndexFunc(chs, func(c store.Channel) bool { return c.ID == ch.ID }); i >= 0 {
		chs[i] = ch
	} else {
		if ch.Order == 0 {
			ch.Order = len(chs) + 1
		}
		chs = append(chs, ch)
	}
	if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.PutChannel(&ch) }); err != nil {
		return ch, err
	}
	slices.SortStableFunc(chs, func(a, b store.Channel) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.ID, b.ID))
	})
	cu.channels, cu.rules = chs, compileRules(chs)
	return ch, nil
}

// NumberInput is one line of a bulk number import.
type NumberInput struct {
	Number  string `json:"number"`
	Kind    string `json:"kind"`    // pool (default) or static
	Channel string `json:"channel"` // static numbers: the channel's id or name
	Line    int    `json:"-"`       // where it came from (CSV); 0: its index + 1
}

// ImportNumbers adds numbers to a customer, all or nothing: a bad or duplicate line fails the
// whole import with an InvalidError (or ErrConflict) naming its 1-based line.
func (p *Pool) ImportNumbers(ctx context.Context, customerID string, in []NumberInput) (int, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return 0, err
	}
	cu.mu.Lock()
	defer cu.mu.Unlock()
	now := p.now().UTC()
	seen := make(map[string]int, len(in))
	recs := make([]store.Number, 0, len(in))
	for i, ni := range in {
		line := i + 1
		if ni.Line > 0 {
			line = ni.Line
		}
		bad := func(field, reason string) error { return &InvalidError{Field: field, Line: line, Reason: reason} }
		n := strings.TrimSpace(ni.Number)
		if !e164.Valid(n) {
			return 0, bad("number", fmt.Sprintf("%q is not E.164 (like +31852087972)", textutil.Clip(n, 40)))
		}
		if prev, dup := seen[n]; dup {
			return 0, bad("number", fmt.Sprintf("%s repeats line %d", n, prev))
		}
		seen[n] = line
		kind := store.KindPool
		if ni.Kind != "" {
			if kind, err = store.ParseNumberKind(ni.Kind); err != nil {
				return 0, bad("kind", "must be pool or static")
			}
		}
		rec := store.Number{E164: n, CustomerID: customerID, Kind: kind, State: store.NumberAvailable, Created: now}
		switch {
		case kind == store.KindStatic:
			i := slices.IndexFunc(cu.channels, func(c store.Channel) bool { return c.ID == ni.Channel || c.Name == ni.Channel })
			if i < 0 {
				return 0, bad("channel", fmt.Sprintf("unknown channel %q", textutil.Clip(ni.Channel, 40)))
			}
			rec.ChannelID = cu.channels[i].ID
		case ni.Channel != "":
			return 0, bad("channel", "only static numbers have a channel")
		}
		p.mu.RLock()
		_, exists := p.numbers[n]
		held := p.held[n]
		p.mu.RUnlock()
		if exists {
			return 0, &InvalidError{Field: "number", Line: line, Reason: n + " is already a tracked number"}
		}
		if held != nil {
			return 0, &InvalidError{Field: "number", Line: line, Reason: n + " is in quarantine until " + held.QuarantinedUntil.Format(time.DateOnly)}
		}
		recs = append(recs, rec)
	}
	err = p.db.Write(ctx, func(tx *store.Tx) error {
		for i := range recs {
			if tx.HasNumber(recs[i].E164) {
				return &InvalidError{Field: "number", Line: i + 1, Reason: recs[i].E164 + " is already a tracked number"}
			}
			if err := tx.PutNumber(&recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var pooled []*number
	for _, r := range recs {
		if num := p.addNumber(cu, r); r.Kind == store.KindPool {
			pooled = append(pooled, num)
		}
	}
	// Memory answers attribution from here on: it reads what the store has of the window
	// (nothing, unless a number comes back soon after it left).
	if len(pooled) > 0 {
		if err := p.db.View(func(tx *store.Tx) error { return p.loadRecent(tx, cu, pooled, now.Add(-p.window())) }); err != nil {
			p.log.Warn("imported numbers: recent assignments not read; attribution reads the store", "customer", cu.c.ID, "err", err)
			for _, num := range pooled {
				num.recent, num.since = nil, time.Time{}
			}
		}
	}
	return len(recs), nil
}

// NumberOwner returns the id of the customer that owns a tracked number.
func (p *Pool) NumberOwner(number string) (string, error) {
	p.mu.RLock()
	num := p.numbers[number]
	p.mu.RUnlock()
	if num == nil {
		return "", ErrUnknownNumber
	}
	return num.n.CustomerID, nil
}

// Quarantine takes a number out of circulation until the given time.
func (p *Pool) Quarantine(ctx context.Context, number string, until time.Time) error {
	p.mu.RLock()
	num := p.numbers[number]
	p.mu.RUnlock()
	if num == nil {
		return ErrUnknownNumber
	}
	cu := num.cust
	cu.mu.Lock()
	defer cu.mu.Unlock()
	rec := num.n
	rec.State, rec.QuarantinedUntil = store.NumberQuarantined, until.UTC()
	if err := p.db.Write(ctx, func(tx *store.Tx) error { return tx.PutNumber(&rec) }); err != nil {
		return err
	}
	num.n = rec
	if num.heapIdx >= 0 {
		cu.heap.remove(num.heapIdx)
	}
	if num.holder != "" {
		delete(cu.holders, num.holder)
	}
	return nil
}

// NumberView is a number with its live state.
type NumberView struct {
	store.Number
	Live  string    `json:"live_state"` // available, assigned, grace, quarantined
	Until time.Time `json:"lease_until,omitzero"`
}

// Numbers lists a customer's numbers by E.164.
func (p *Pool) Numbers(customerID string) ([]NumberView, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return nil, err
	}
	now := p.now()
	nums := p.numbersOf(cu)
	out := make([]NumberView, 0, len(nums))
	cu.mu.Lock()
	defer cu.mu.Unlock()
	for _, num := range nums {
		out = append(out, NumberView{Number: num.n, Live: p.liveState(num, now), Until: num.leaseUntil})
	}
	return out, nil
}

func (p *Pool) liveState(num *number, now time.Time) string {
	switch {
	case num.n.State == store.NumberQuarantined:
		return "quarantined"
	case num.n.Kind == store.KindStatic || num.holder == "":
		return "available"
	case now.Before(num.leaseUntil):
		return "assigned"
	case now.Before(num.leaseUntil.Add(p.cfg.Grace)):
		return "grace"
	}
	return "available"
}

// PoolStatus summarises a customer's pool.
type PoolStatus struct {
	Total           int     `json:"pool_numbers"`
	Available       int     `json:"available"`
	Assigned        int     `json:"assigned"`
	InGrace         int     `json:"grace"`
	Quarantined     int     `json:"quarantined"`
	Static          int     `json:"static_numbers"`
	Exhaustions     uint64  `json:"exhaustions"`
	PeakAssigned    int     `json:"peak_assigned"`
	PeakUtilisation float64 `json:"peak_utilisation"`
	Utilisation     float64 `json:"utilisation"`
	SessionsTotal   uint64  `json:"sessions_total"`
}

// Status counts a customer's numbers by state, with its counters.
func (p *Pool) Status(customerID string) (PoolStatus, error) {
	cu, err := p.customerByID(customerID)
	if err != nil {
		return PoolStatus{}, err
	}
	now := p.now()
	var st PoolStatus
	p.mu.RLock()
	for _, num := range p.numbers {
		if num.cust == cu && num.n.Kind == store.KindStatic {
			st.Static++
		}
	}
	p.mu.RUnlock()
	cu.mu.Lock()
	defer cu.mu.Unlock()
	for _, num := range cu.pool {
		st.Total++
		switch p.liveState(num, now) {
		case "quarantined":
			st.Quarantined++
		case "assigned":
			st.Assigned++
		case "grace":
			st.InGrace++
		default:
			st.Available++
		}
	}
	st.Exhaustions, st.SessionsTotal = cu.stats.Exhaustions, cu.stats.SessionsTotal
	st.PeakAssigned = max(cu.stats.PeakAssigned, st.Assigned)
	if usable := st.Total - st.Quarantined; usable > 0 {
		st.Utilisation = float64(st.Assigned) / float64(usable)
		st.PeakUtilisation = min(1, float64(st.PeakAssigned)/float64(usable))
	}
	return st, nil
}

// Sessions pages through a customer's sessions, newest first, below the id before.
func (p *Pool) Sessions(customerID, before string, limit int) ([]store.Session, error) {
	if _, err := p.customerByID(customerID); err != nil {
		return nil, err
	}
	var out []store.Session
	err := p.db.View(func(tx *store.Tx) (err error) { out, err = tx.SessionsOf(customerID, before, limit); return err })
	return out, err
}

func sortCustomers(cs []store.Customer) {
	slices.SortFunc(cs, func(a, b store.Customer) int { return cmp.Compare(a.ID, b.ID) })
}
