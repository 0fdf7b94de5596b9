package e164

import "errors"

// Errors returned by Normalize and ParseStyle. They carry no part of the input,
// so that a caller's number never ends up in a log line by way of an error; callers that
// need context wrap them.
var (
	// ErrEmpty: the input holds nothing but spaces.
	ErrEmpty = errors.New("e164: empty number")
	// ErrInvalid: a letter, a control character (CR, LF), a misplaced "+", unbalanced
	// parentheses, or no "+", "00" or "0" in front of the digits.
	ErrInvalid = errors.New("e164: invalid number")
	// ErrTooLong: more than 64 bytes of input or more than 15 digits.
	ErrTooLong = errors.New("e164: number too long")
	// ErrTooShort: fewer than 8 digits after the country code is put in front.
	ErrTooShort = errors.New("e164: number too short")
	// ErrCountryCode: the country code argument is not a country calling code ("31", "1", "420").
	ErrCountryCode = errors.New("e164: invalid country code")
	// ErrUnknownStyle: ParseStyle got something other than national, e164 or international.
	ErrUnknownStyle = errors.New("e164: unknown display format")
)
