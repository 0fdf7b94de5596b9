package pool

import (
	"errors"
	"slices"
	"time"

	"github.com/trackline/trackline/store"
)

// Attribution is what a call on a number at a moment is attributed to.
type Attribution struct {
	CustomerID string
	Number     string
	Kind       store.NumberKind
	// Session is the most recent session whose lease covered the moment or ended within the
	// grace window before it; nil if there is none.
	Session *store.Session
	// Channel is the session's channel, the static number's channel, or "Unattributed".
	Channel string
	// Candidates is how many sessions could have made the call (1 is certain).
	Candidates int
	// LeaseFrom and LeaseUntil bound the lease of Session's that covered the moment; InGrace:
	// the moment came after the lease ended, within the grace window.
	LeaseFrom, LeaseUntil time.Time
	InGrace               bool
	// Others are the other candidates' session ids, newest first (at most 10).
	Others []string
}

// Attribute maps a call on number at the moment at to the session or channel behind it.
func (p *Pool) Attribute(number string, at time.Time) (Attribution, error) {
	p.mu.RLock()
	num, held := p.numbers[number], p.held[number]
	p.mu.RUnlock()
	if held != nil {
		// Held in quarantine after its customer was deleted: it belongs to nobody.
		return Attribution{Number: number, Kind: held.Kind, Channel: ChannelUnattributed}, ErrQuarantined
	}
	if num == nil {
		return Attribution{}, ErrUnknownNumber
	}
	cu := num.cust
	cu.mu.Lock()
	res := Attribution{CustomerID: cu.c.ID, Number: number, Kind: num.n.Kind, Channel: ChannelUnattributed}
	state, until := num.n.State, num.n.QuarantinedUntil
	if num.n.Kind == store.KindStatic {
		for _, ch := range cu.channels {
			if ch.ID == num.n.ChannelID {
				res.Channel = ch.Name
			}
		}
	}
	recent := append([]store.Assignment(nil), num.recent...)
	since := num.since
	cu.mu.Unlock()
	if state == store.NumberQuarantined && at.Before(until) {
		return res, ErrQuarantined
	}
	if num.n.Kind != store.KindPool {
		return res, nil
	}

	// From memory when it holds every assignment that may cover the moment: it reaches back
	// past the window, or its oldest had ended before it. Else from the store: the records
	// of the customer that began in the window before the moment.
	covers := func(a *store.Assignment) bool { return !a.From.After(at) && !at.After(a.Until.Add(p.cfg.Grace)) }
	var found []store.Assignment // newest first
	// On a shared store other nodes lease too: always from the store (shared.go).
	if !p.db.Shared() && (!since.IsZero() && !at.Before(since.Add(p.window())) ||
		len(recent) > 0 && recent[len(recent)-1].Until.Add(p.cfg.Grace).Before(at)) {
		for i := range recent {
			if covers(&recent[i]) {
				found = append(found, recent[i])
			}
		}
	} else {
		var recs []store.Assignment
		err := p.db.View(func(tx *store.Tx) error {
			return tx.NumberAssignments(res.CustomerID, number, at.Add(-p.window()), at, func(a store.Assignment) bool {
				recs = append(recs, a)
				return true
			})
		})
		if err != nil {
			return res, err
		}
		applyCuts(recs)
		for i := len(recs) - 1; i >= 0; i-- {
			if covers(&recs[i]) {
				found = append(found, recs[i])
			}
		}
	}
	// A lease renewed for long is stored in segments: count sessions, not records.
	for i := range found {
		if !slices.ContainsFunc(found[:i], func(b store.Assignment) bool { return b.SessionID == found[i].SessionID }) {
			res.Candidates++
			if i > 0 && len(res.Others) < 10 {
				res.Others = append(res.Others, found[i].SessionID)
			}
		}
	}
	if len(found) == 0 {
		return res, nil
	}
	res.LeaseFrom, res.LeaseUntil = found[0].From, found[0].Until
	for _, a := range found[1:] {
		if a.SessionID == found[0].SessionID && a.From.Before(res.LeaseFrom) {
			res.LeaseFrom = a.From
		}
	}
	res.InGrace = at.After(res.LeaseUntil)
	var s store.Session
	err := p.db.View(func(tx *store.Tx) (err error) { s, err = tx.Session(found[0].SessionID); return err })
	if errors.Is(err, store.ErrNotFound) {
		return res, nil // erased since
	}
	if err != nil {
		return res, err
	}
	res.Session, res.Channel = &s, s.Channel
	return res, nil
}

// applyCuts ends each of recs, the records of one number oldest first, where a record that
// cut it short began (store.Assignment's CutFrom): a record is not rewritten when it is cut
// short.
func applyCuts(recs []store.Assignment) {
	var first map[int64]int // From -> the first record that began then
	for i := range recs {
		a := &recs[i]
		if a.CutFrom.IsZero() {
			continue
		}
		if first == nil {
			first = make(map[int64]int, len(recs))
			for j := len(recs) - 1; j >= 0; j-- {
				first[recs[j].From.UnixNano()] = j
			}
		}
		j, ok := first[a.CutFrom.UnixNano()]
		for ok && j == i { // not itself, if both began at the same moment
			j++
			ok = j < len(recs) && recs[j].From.Equal(a.CutFrom)
		}
		if ok && recs[j].Until.After(a.From) {
			recs[j].Until = a.From
		}
	}
}
