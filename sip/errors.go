package sip

import "errors"

var (
	// ErrDraining is the cause given to calls that the shutdown drain ended.
	ErrDraining = errors.New("switch shutting down")
	// ErrConfig reports a configuration the switch cannot run with.
	ErrConfig = errors.New("sip config")
)
