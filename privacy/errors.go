package privacy

import "errors"

var (
	// ErrBadNumber: the number a data subject is named by is not a phone number (E.164 or
	// national form); it wraps the reason package e164 gave. A customer that does not
	// exist gives pool.ErrUnknownCustomer instead.
	ErrBadNumber = errors.New("not a phone number")
	// ErrCallInProgress: a call from the caller is in progress; erase them once it has
	// ended. Nothing was erased.
	ErrCallInProgress = errors.New("a call from this number is in progress")
	// ErrInService: the customer is in service; end its contract (or trial) before erasing
	// it. Nothing was erased.
	ErrInService = errors.New("the customer is in service")
	// ErrActiveCalls: the customer has calls in progress; erase it once they have ended.
	ErrActiveCalls = errors.New("the customer has calls in progress")
	// ErrUnknownRecording: a recording's record names a path outside the recordings
	// directory (a damaged or forged record); the export is refused.
	ErrUnknownRecording = errors.New("unknown recording")
	// ErrNotCompacted: the data was erased but the store file was not compacted, so freed
	// pages may still hold it; erase again (or compaction at the next start finishes it).
	ErrNotCompacted = errors.New("erased, but the store was not compacted")
)
