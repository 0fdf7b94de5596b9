package pool

import (
	"errors"
	"strconv"
)

var (
	// ErrUnknownCustomer: no customer with that id or site key.
	ErrUnknownCustomer = errors.New("unknown customer")
	// ErrCustomerEnded: the customer is not in service (its contract or trial ended); no
	// numbers are handed out.
	ErrCustomerEnded = errors.New("customer ended")
	// ErrUnknownSession: no such session for this customer.
	ErrUnknownSession = errors.New("unknown session")
	// ErrUnknownNumber: the number is not a tracked number.
	ErrUnknownNumber = errors.New("unknown number")
	// ErrQuarantined: the number is quarantined (Attribution.CustomerID is "" for a number
	// held after its customer was deleted).
	ErrQuarantined = errors.New("number quarantined")
	// ErrNoNumbers: the customer has no pool numbers to hand out.
	ErrNoNumbers = errors.New("no pool numbers")
	// ErrInvalid: an input failed validation; see InvalidError for the field.
	ErrInvalid = errors.New("invalid input")
	// ErrConflict: the change collides with existing data (a number owned elsewhere, an id taken).
	ErrConflict = errors.New("conflict")
)

// InvalidError names the input that was wrong. Line is 1-based for bulk imports, else 0.
type InvalidError struct {
	Field  string
	Line   int
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Line > 0 {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Field + ": " + e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

func invalid(field, reason string) error { return &InvalidError{Field: field, Reason: reason} }
