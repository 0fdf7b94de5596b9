package sip

import (
	"sync"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/trackline/trackline/store"
)

// leg says which side of a call a dialog is.
type leg uint8

const (
	legUnknown leg = iota
	legCaller      // A: the trunk's dialog, where we are the UAS
	legCallee      // B: the business line's dialog, where we are the UAC
)

func (l leg) String() string {
	if p := l.party(); p != "" {
		return string(p)
	}
	return "unknown"
}

// party is the leg as the call record names who hung up.
func (l leg) party() store.Party {
	switch l {
	case legCaller:
		return store.PartyCaller
	case legCallee:
		return store.PartyBusinessLine
	}
	return ""
}

type entry struct {
	call *call
	leg  leg
}

// callTable finds a call by either leg's dialog id.
type callTable struct {
	mu      sync.Mutex
	dialogs map[string]entry
	calls   map[*call]struct{}
}

func newCallTable() *callTable {
	return &callTable{dialogs: map[string]entry{}, calls: map[*call]struct{}{}}
}

func (t *callTable) add(c *call) {
	t.mu.Lock()
	t.calls[c] = struct{}{}
	t.mu.Unlock()
}

func (t *callTable) index(id string, c *call, l leg) {
	t.mu.Lock()
	t.dialogs[id] = entry{call: c, leg: l}
	t.mu.Unlock()
}

func (t *callTable) remove(c *call, ids ...string) {
	t.mu.Lock()
	for _, id := range ids {
		if e, ok := t.dialogs[id]; ok && e.call == c {
			delete(t.dialogs, id)
		}
	}
	delete(t.calls, c)
	t.mu.Unlock()
}

func (t *callTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}

// match finds the call of an in-dialog request: as the UAS of leg A (To tag is ours) or as
// the UAC of leg B (From tag is the far end's, To tag ours).
func (t *callTable) match(req *sipmsg.Request) (entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, err := sipmsg.DialogIDFromRequestUAS(req); err == nil {
		if e, ok := t.dialogs[id]; ok && e.leg == legCaller {
			return e, true
		}
	}
	if id, err := sipmsg.DialogIDFromRequestUAC(req); err == nil {
		if e, ok := t.dialogs[id]; ok && e.leg == legCallee {
			return e, true
		}
	}
	return entry{}, false
}
