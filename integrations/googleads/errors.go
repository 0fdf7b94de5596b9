package googleads

import (
	"errors"
	"strconv"
)

var (
	// ErrSealed is returned by Unseal for sealed secrets that are not this package's, or
	// not the customer's.
	ErrSealed = errors.New("google ads secrets do not open")
	// ErrRunning is returned by Run when it runs already or after Close.
	ErrRunning = errors.New("googleads: already running or closed")
)

// APIError is an answer of the Google Ads API that was not a success.
type APIError struct {
	Status int
	Body   string // the answer's start
}

func (e *APIError) Error() string {
	return "google ads api: status " + strconv.Itoa(e.Status) + ": " + e.Body
}
