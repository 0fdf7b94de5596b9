package integrations

import (
	"errors"
	"net/netip"
)

var (
	// ErrForbiddenAddress is returned when a webhook would connect to an address the guard
	// refuses (Guard.Allowed); an *AddressError names it.
	ErrForbiddenAddress = errors.New("address not allowed for webhooks")
	// ErrURL is returned by CheckURL for an endpoint URL the policy refuses.
	ErrURL = errors.New("webhook URL not allowed")
	// ErrRunning is returned by Run when it runs already or after Close.
	ErrRunning = errors.New("webhooks: already running or closed")
)

// AddressError is an ErrForbiddenAddress for one address.
type AddressError struct{ Addr netip.Addr }

func (e *AddressError) Error() string { return ErrForbiddenAddress.Error() + ": " + e.Addr.String() }

// Unwrap makes an AddressError an ErrForbiddenAddress.
func (e *AddressError) Unwrap() error { return ErrForbiddenAddress }
