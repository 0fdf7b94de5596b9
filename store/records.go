package store

import (
	"fmt"
	"time"
)

// CustomerStatus is where a customer is in its contract.
type CustomerStatus uint8

// Customer statuses. The zero value is unknown and never stored.
const (
	StatusUnknown CustomerStatus = iota
	StatusTrial
	StatusActive
	StatusEnded
)

var customerStatusNames = [...]string{"unknown", "trial", "active", "ended"}

func (s CustomerStatus) String() string {
	if int(s) < len(customerStatusNames) {
		return customerStatusNames[s]
	}
	return fmt.Sprintf("CustomerStatus(%d)", uint8(s))
}

// ParseCustomerStatus reads "trial", "active" or "ended".
func ParseCustomerStatus(v string) (CustomerStatus, error) {
	for i, n := range customerStatusNames {
		if i > 0 && n == v {
			return CustomerStatus(i), nil
		}
	}
	return StatusUnknown, fmt.Errorf("unknown customer status %q (want trial, active or ended)", v)
}

// MarshalText implements encoding.TextMarshaler.
func (s CustomerStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *CustomerStatus) UnmarshalText(b []byte) error {
	v, err := ParseCustomerStatus(string(b))
	*s = v
	return err
}

// RetentionAction is what happens to a customer's data when its retention period is over.
type RetentionAction uint8

// Retention actions. The zero value is unset and means RetainDelete.
const (
	RetainUnset RetentionAction = iota
	RetainDelete
	RetainExportThenDelete
)

var retentionActionNames = [...]string{"", "delete", "export_then_delete"}

func (a RetentionAction) String() string {
	if int(a) < len(retentionActionNames) {
		return retentionActionNames[a]
	}
	return fmt.Sprintf("RetentionAction(%d)", uint8(a))
}

// ParseRetentionAction reads "delete" or "export_then_delete" ("" is unset).
func ParseRetentionAction(v string) (RetentionAction, error) {
	for i, n := range retentionActionNames {
		if n == v {
			return RetentionAction(i), nil
		}
	}
	return RetainUnset, fmt.Errorf("unknown retention action %q (want delete or export_then_delete)", v)
}

// MarshalText implements encoding.TextMarshaler.
func (a RetentionAction) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *RetentionAction) UnmarshalText(b []byte) error {
	v, err := ParseRetentionAction(string(b))
	*a = v
	return err
}

// NumberKind tells how a number is used.
type NumberKind uint8

// Number kinds. The zero value is unknown and never stored.
const (
	KindUnknown NumberKind = iota
	KindPool               // handed out to website sessions (DNI)
	KindStatic             // bound to one (offline) channel
)

var numberKindNames = [...]string{"unknown", "pool", "static"}

func (k NumberKind) String() string {
	if int(k) < len(numberKindNames) {
		return numberKindNames[k]
	}
	return fmt.Sprintf("NumberKind(%d)", uint8(k))
}

// ParseNumberKind reads "pool" or "static".
func ParseNumberKind(v string) (NumberKind, error) {
	for i, n := range numberKindNames {
		if i > 0 && n == v {
			return NumberKind(i), nil
		}
	}
	return KindUnknown, fmt.Errorf("unknown number kind %q (want pool or static)", v)
}

// MarshalText implements encoding.TextMarshaler.
func (k NumberKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *NumberKind) UnmarshalText(b []byte) error {
	v, err := ParseNumberKind(string(b))
	*k = v
	return err
}

// NumberState is the stored state of a number. Whether a pool number is assigned is not
// stored here: it follows from its assignments (see package pool).
type NumberState uint8

// Number states. The zero value is unknown and never stored.
const (
	NumberUnknown NumberState = iota
	NumberAvailable
	NumberQuarantined
)

var numberStateNames = [...]string{"unknown", "available", "quarantined"}

func (s NumberState) String() string {
	if int(s) < len(numberStateNames) {
		return numberStateNames[s]
	}
	return fmt.Sprintf("NumberState(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s NumberState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *NumberState) UnmarshalText(b []byte) error {
	for i, n := range numberStateNames {
		if i > 0 && n == string(b) {
			*s = NumberState(i)
			return nil
		}
	}
	return fmt.Errorf("unknown number state %q", b)
}

// Customer is a tenant: the business whose calls are tracked.
type Customer struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	Status         CustomerStatus `json:"status"`
	SiteKey        string         `json:"site_key"`
	AllowedOrigins []string       `json:"allowed_origins"`
	BusinessLines  []string       `json:"business_lines"`
	DisplayNumbers []string       `json:"display_numbers"`
	DisplayFormat  string         `json:"display_format"`
	Created        time.Time      `json:"created"`
	// TrialEnds is when a trial ends; a trial still running then ends without a contract
	// and its data is deleted.
	TrialEnds time.Time `json:"trial_ends,omitzero"`
	// ActiveSince is when the contract started (the customer became active); zero for a
	// customer that never had a contract.
	ActiveSince time.Time `json:"active_since,omitzero"`
	// ContractEnds is when an active contract is to end (zero: open-ended).
	ContractEnds time.Time `json:"contract_ends,omitzero"`
	// EndedAt is when the customer ended.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// RetentionMonths is how long the data is kept after the contract ended (0: the switch
	// default, 3); RetentionAction what happens to it then.
	RetentionMonths int             `json:"retention_months,omitempty"`
	RetentionAction RetentionAction `json:"retention_action,omitempty"`
	// RingTimeout bounds how long one business line rings (0: the switch default, 30s).
	RingTimeout time.Duration `json:"ring_timeout,omitzero"`
	// MaxCallDuration is the fair-use limit of one call (0: the switch default, 4h).
	MaxCallDuration time.Duration `json:"max_call_duration,omitzero"`
	// Recording says which of the customer's calls are recorded.
	Recording RecordingPolicy `json:"recording,omitzero"`
	// Prompts are played on every call; NumberPrompts override them per tracked number.
	Prompts       Prompts            `json:"prompts,omitzero"`
	NumberPrompts map[string]Prompts `json:"number_prompts,omitempty"`
	// PseudonymousCallers: the caller's number is never stored, only its pseudonym (a keyed
	// hash, Call.CallerPseudonym) and its last three digits (Call.CallerLastDigits).
	PseudonymousCallers bool `json:"pseudonymous_callers,omitempty"`
}

// RecordingPolicy says which calls of a customer are recorded.
type RecordingPolicy struct {
	Enabled bool `json:"enabled,omitempty"`
	// Numbers and Channels narrow recording to calls to these tracked numbers (E.164) or
	// attributed to these channels; both empty records every call.
	Numbers  []string `json:"numbers,omitempty"`
	Channels []string `json:"channels,omitempty"`
	// ProfessionalSecrecy marks a customer bound by professional secrecy (doctors, lawyers,
	// notaries, accountants, psychologists, interpreters): its calls are recorded only once
	// ConsentConfirmed is set.
	ProfessionalSecrecy bool `json:"professional_secrecy,omitempty"`
	ConsentConfirmed    bool `json:"recording_consent_confirmed,omitempty"`
}

// Prompts are the audio played on a call: Disclaimer to the caller before the bridge,
// Whisper to the business line. Each is "" (none), "default" (the built-in disclaimer) or
// the path of an 8 kHz mono 16-bit PCM WAV file.
type Prompts struct {
	Disclaimer string `json:"disclaimer,omitempty"`
	Whisper    string `json:"whisper,omitempty"`
}

// ChannelRule matches a visit parameter against a glob pattern ('*' matches any run).
// Param is one of utm_source, utm_medium, utm_campaign, utm_term, utm_content, gclid,
// gbraid, wbraid, referrer_host, landing_path.
type ChannelRule struct {
	Param   string `json:"param"`
	Pattern string `json:"pattern"`
}

// Channel is an advertising channel of a customer. Online channels are recognised by their
// rules; offline channels own static numbers.
type Channel struct {
	CustomerID string        `json:"customer_id"`
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Order      int           `json:"order"`
	Rules      []ChannelRule `json:"rules,omitempty"`
}

// Number is a tracked phone number in E.164. CustomerID is empty for a number held in
// quarantine after its customer's data was deleted (see DB.PurgeCustomer).
type Number struct {
	E164             string      `json:"number"`
	CustomerID       string      `json:"customer_id"`
	Kind             NumberKind  `json:"kind"`
	ChannelID        string      `json:"channel_id,omitempty"`
	State            NumberState `json:"state"`
	QuarantinedUntil time.Time   `json:"quarantined_until,omitzero"`
	// Porting marks a number the customer takes to another provider: when its quarantine
	// is over it is not released to the stock.
	Porting bool      `json:"porting,omitempty"`
	Created time.Time `json:"created"`
}

// Session is one visitor's visit that saw a number. It holds no IP address and no user
// agent; the landing page is kept without its query and the referrer as a host only.
type Session struct {
	ID           string    `json:"id"`
	CustomerID   string    `json:"customer_id"`
	Created      time.Time `json:"created"`
	Channel      string    `json:"channel"`
	LandingPage  string    `json:"landing_page,omitempty"`
	ReferrerHost string    `json:"referrer_host,omitempty"`
	UTMSource    string    `json:"utm_source,omitempty"`
	UTMMedium    string    `json:"utm_medium,omitempty"`
	UTMCampaign  string    `json:"utm_campaign,omitempty"`
	UTMTerm      string    `json:"utm_term,omitempty"`
	UTMContent   string    `json:"utm_content,omitempty"`
	Gclid        string    `json:"gclid,omitempty"`
	Gbraid       string    `json:"gbraid,omitempty"`
	Wbraid       string    `json:"wbraid,omitempty"`
	// AdConsent is the visitor's consent to ads use of its data (Google Consent Mode v2's
	// ad_user_data and ad_personalization together), as the DNI script found it on the
	// page. Without ConsentGranted no conversion of the session's calls goes to Google Ads.
	AdConsent Consent `json:"ad_consent,omitempty"`
}

// Consent is a visitor's answer to a consent question; the zero value is unknown (never
// asked, or not told).
type Consent string

// The consent states.
const (
	ConsentUnknown Consent = ""
	ConsentGranted Consent = "granted"
	ConsentDenied  Consent = "denied"
)

// String names the state; "unknown" for the zero value.
func (c Consent) String() string {
	if c == ConsentUnknown {
		return "unknown"
	}
	return string(c)
}

// ParseConsent reads "granted", "denied", "unknown" or "".
func ParseConsent(v string) (Consent, error) {
	switch c := Consent(v); c {
	case ConsentGranted, ConsentDenied, ConsentUnknown:
		return c, nil
	case "unknown":
		return ConsentUnknown, nil
	}
	return "", fmt.Errorf("unknown consent %q (want granted, denied or unknown)", v)
}

// Assignment is a lease of one pool number of a customer to one session over [From, Until].
type Assignment struct {
	CustomerID string    `json:"customer_id"`
	Number     string    `json:"number"`
	SessionID  string    `json:"session_id"`
	From       time.Time `json:"from"`
	Until      time.Time `json:"until"`
	// CutFrom, when set, names the record of the same number (by its From) that this one
	// cut short at its From: a live lease taken over, or continued in a new record. That
	// record is not rewritten; its lease ended here, at the latest, whatever its Until says.
	CutFrom time.Time `json:"cut_from,omitzero"`
}

// CustomerStats are counters kept per customer.
type CustomerStats struct {
	SessionsTotal uint64 `json:"sessions_total"`
	Exhaustions   uint64 `json:"exhaustions"`
	PeakAssigned  int    `json:"peak_assigned"`
}

// Disposition is how a call ended; the zero value is a call still in progress.
type Disposition string

// The dispositions of a finished call.
const (
	DispAnswered  Disposition = "answered"
	DispBusy      Disposition = "busy"
	DispNoAnswer  Disposition = "no-answer"
	DispCancelled Disposition = "cancelled"
	DispRejected  Disposition = "rejected"
	DispFailed    Disposition = "failed"
)

// ParseDisposition reads a finished call's disposition, for filters from outside.
func ParseDisposition(v string) (Disposition, error) {
	switch d := Disposition(v); d {
	case DispAnswered, DispBusy, DispNoAnswer, DispCancelled, DispRejected, DispFailed:
		return d, nil
	}
	return "", fmt.Errorf("unknown disposition %q (want answered, busy, no-answer, cancelled, rejected or failed)", v)
}

// Party is who ended a call; the zero value is nobody yet.
type Party string

// The parties that end calls.
const (
	PartyCaller       Party = "caller"
	PartyBusinessLine Party = "business_line"
	PartySwitch       Party = "switch"
)

// LeadStatus is what a call turned out to be for the customer's sales, as the customer marks
// it (Call.LeadStatus); the zero value is not marked.
type LeadStatus string

// The lead statuses.
const (
	LeadStatusNone      LeadStatus = ""
	LeadStatusLead      LeadStatus = "lead"       // a prospect
	LeadStatusQualified LeadStatus = "qualified"  // a prospect worth following up
	LeadStatusCustomer  LeadStatus = "customer"   // it bought
	LeadStatusNotALead  LeadStatus = "not_a_lead" // a supplier, a wrong number, spam
)

// ParseLeadStatus reads "", "lead", "qualified", "customer" or "not_a_lead".
func ParseLeadStatus(v string) (LeadStatus, error) {
	switch s := LeadStatus(v); s {
	case LeadStatusNone, LeadStatusLead, LeadStatusQualified, LeadStatusCustomer, LeadStatusNotALead:
		return s, nil
	}
	return "", fmt.Errorf("unknown lead status %q (want lead, qualified, customer, not_a_lead or empty)", v)
}

// Call is one inbound call with its attribution snapshot. Written by the call layer: once,
// durably, when the INVITE is accepted, and again when the call ends.
//
// Disposition is empty while the call is active; HangupBy says who ended it; EndReason why the
// switch ended a call (max_duration, shutdown, ...).
//
// The annotations (LeadStatus, Tags, Value, Note, Updated) are the customer's, changed only
// by AnnotateCall: PutCall keeps those of the stored record, so that the call layer's write
// at the end of a call does not undo a tag set while it rang.
type Call struct {
	ID           string `json:"id"`
	CustomerID   string `json:"customer_id"`
	Dialled      string `json:"dialled"`
	Caller       string `json:"caller,omitempty"` // E.164 (or the From user as sent); empty for pseudonymous callers
	BusinessLine string `json:"business_line,omitempty"`
	// AgentID is the agent token of the browser agent that answered a webrtc: line.
	AgentID      string      `json:"agent_id,omitempty"`
	SessionID    string      `json:"session_id,omitempty"`
	Channel      string      `json:"channel,omitempty"`
	Keyword      string      `json:"keyword,omitempty"`
	LandingPage  string      `json:"landing_page,omitempty"`
	ReferrerHost string      `json:"referrer_host,omitempty"`
	Gclid        string      `json:"gclid,omitempty"`
	Candidates   int         `json:"candidates"`
	Start        time.Time   `json:"start"`
	Ringing      time.Time   `json:"ringing,omitzero"`
	Answer       time.Time   `json:"answer,omitzero"`
	End          time.Time   `json:"end,omitzero"`
	Disposition  Disposition `json:"disposition,omitempty"`
	HangupBy     Party       `json:"hangup_by,omitempty"`
	EndReason    string      `json:"end_reason,omitempty"`
	TalkSeconds  float64     `json:"talk_seconds,omitempty"`
	FinalStatus  int         `json:"final_status,omitempty"`
	CallIDA      string      `json:"call_id_a,omitempty"`
	CallIDB      string      `json:"call_id_b,omitempty"`
	// Node is the id of the node that took the call (configs: node_id).
	Node        string `json:"node,omitempty"`
	RecordingID string `json:"recording_id,omitempty"`
	// Media holds the RTP statistics of an anchored call (nil for direct media).
	Media *CallMedia `json:"media,omitempty"`
	// NotRecordedReason says why a call of a recording customer was not recorded.
	NotRecordedReason string `json:"not_recorded_reason,omitempty"`
	// CallerPseudonym is the caller's pseudonym at this customer: a keyed hash of the
	// caller's number (package keyring), the same for every call of one caller. Calls are
	// indexed by it.
	CallerPseudonym string `json:"caller_pseudonym,omitempty"`
	// CallerLastDigits are the last three digits of the caller's number, kept in its place
	// for a customer with pseudonymous callers.
	CallerLastDigits string `json:"caller_last_digits,omitempty"`

	LeadStatus LeadStatus `json:"lead_status,omitempty"`
	Tags       []string   `json:"tags,omitempty"`  // at most MaxTags, each 1-MaxTagLen characters
	Value      float64    `json:"value,omitempty"` // money, in the customer's currency: 0-MaxCallValue
	Note       string     `json:"note,omitempty"`  // at most MaxNoteLen characters
	// Updated is when the annotations last changed (set by the function AnnotateCall runs).
	Updated time.Time `json:"updated,omitzero"`
}

// CallMedia is what the media anchor saw of a call.
type CallMedia struct {
	CallerCodec string `json:"caller_codec"`
	CalleeCodec string `json:"business_line_codec,omitempty"`
	// FromCaller and FromCallee count the RTP received from each leg.
	FromCaller StreamStats `json:"from_caller"`
	FromCallee StreamStats `json:"from_business_line"`
	// StrictSourceDrops counts packets from addresses other than the leg's; BadRTP counts
	// packets that were not valid RTP.
	StrictSourceDrops uint64 `json:"strict_source_drops,omitempty"`
	BadRTP            uint64 `json:"bad_rtp,omitempty"`
}

// StreamStats describe one direction of RTP (RFC 3550 §6.4.1, A.3, A.8).
type StreamStats struct {
	Packets  uint64  `json:"packets"`
	Bytes    uint64  `json:"bytes"`
	Lost     int64   `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
}

// Recording is the stereo audio file of a call. The audio is a file; this is its metadata.
type Recording struct {
	ID         string        `json:"id"`
	CustomerID string        `json:"customer_id"`
	CallID     string        `json:"call_id"`
	Path       string        `json:"path"`
	Duration   time.Duration `json:"duration"`
	Size       int64         `json:"size"`
	SHA256     string        `json:"sha256"`
	Created    time.Time     `json:"created"`
}
