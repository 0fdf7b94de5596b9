package integrations

import (
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/trackline/trackline/store"
)

// EndpointEdit is a change to a webhook endpoint, as the admin API and the web app take it:
// a nil member stays as it is.
type EndpointEdit struct {
	URL         *string
	EventTypes  *[]string
	Description *string
	Disabled    *bool
}

// MaxDescription bounds an endpoint's description.
const MaxDescription = 200

// EditEndpoint checks edit and writes it into e at now; URLs must be https unless their host
// is an address in allow (CheckURL). A problem is a *store.FieldError naming the first field
// that is wrong, and leaves e as it was.
func EditEndpoint(e *store.Endpoint, edit EndpointEdit, allow []netip.Prefix, now time.Time) error {
	next := *e
	if edit.URL != nil {
		u := strings.TrimSpace(*edit.URL)
		if len(u) > store.MaxEndpointURL {
			return &store.FieldError{Field: "url", Reason: "at most 2048 bytes"}
		}
		if err := CheckURL(u, allow); err != nil {
			return &store.FieldError{Field: "url", Reason: strings.TrimPrefix(err.Error(), ErrURL.Error()+": ")}
		}
		next.URL = u
	}
	if edit.EventTypes != nil {
		if len(*edit.EventTypes) == 0 {
			return &store.FieldError{Field: "event_types", Reason: "name at least one event type"}
		}
		next.EventTypes = nil
		for _, s := range *edit.EventTypes {
			t, err := store.ParseEventType(s)
			if err != nil {
				return &store.FieldError{Field: "event_types", Reason: err.Error() + " (want " + EventTypeNames() + ")"}
			}
			if !next.Subscribes(t) {
				next.EventTypes = append(next.EventTypes, t)
			}
		}
	}
	if edit.Description != nil {
		d := *edit.Description
		if len(d) > MaxDescription || strings.ContainsFunc(d, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return &store.FieldError{Field: "description", Reason: "at most 200 printable characters"}
		}
		next.Description = d
	}
	if edit.Disabled != nil && *edit.Disabled != next.Disabled {
		next.Disabled, next.DisabledReason = *edit.Disabled, ""
		if *edit.Disabled {
			next.DisabledReason = "disabled"
		}
	}
	next.Updated = now
	*e = next
	return nil
}

// EventTypeNames lists the event types, comma-separated.
func EventTypeNames() string {
	var names []string
	for _, t := range store.EventTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// NewSecret makes an endpoint's secret: whsec_ and the base64 of 32 random bytes.
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return store.SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}
