package sip

import "errors"

var (
	// ErrDraining is the cause given to calls that the shutdown drain ended.
	ErrDraining = errors.New("switch shutting down")
	// ErrMaxDuration is the cause given to calls that reached the fair-use maximum.
	ErrMaxDuration = errors.New("maximum call duration reached")
	// ErrConfig reports a configuration the switch cannot run with.
	ErrConfig = errors.New("sip config")
)
