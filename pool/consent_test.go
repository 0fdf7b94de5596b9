package pool

import (
	"testing"

	"github.com/trackline/trackline/store"
)

func TestSessionAdConsent(t *testing.T) {
	f := newFixture(t, 3)
	consentOf := func(id string) store.Consent {
		t.Helper()
		var s store.Session
		if err := f.db.View(func(tx *store.Tx) (err error) { s, err = tx.Session(id); return err }); err != nil {
			t.Fatal(err)
		}
		return s.AdConsent
	}
	a := f.assign(Visit{AdConsent: store.ConsentDenied})
	steps := []struct {
		name string
		post bool // post the session again, with sent
		sent store.Consent
		want store.Consent
	}{
		{"a new session keeps the consent sent", false, "", store.ConsentDenied},
		{"an unknown consent changes nothing", true, store.ConsentUnknown, store.ConsentDenied},
		{"the banner answered later: granted", true, store.ConsentGranted, store.ConsentGranted},
		{"withdrawn", true, store.ConsentDenied, store.ConsentDenied},
	}
	for _, st := range steps {
		if st.post {
			if l := f.assign(Visit{SessionID: a.SessionID, AdConsent: st.sent}); l.SessionID != a.SessionID || l.New {
				t.Fatalf("%s: the session changed: %+v", st.name, l)
			}
		}
		if got := consentOf(a.SessionID); got != st.want {
			t.Fatalf("%s: consent %s, want %s", st.name, got, st.want)
		}
	}
	// The consent survives a restart.
	f.restart()
	if got := consentOf(a.SessionID); got != store.ConsentDenied {
		t.Fatalf("after a restart: %s", got)
	}
}
