package agents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/trackline/trackline/internal/textutil"
)

// The signalling protocol: one JSON object per WebSocket text message, each with a "type".
// docs/api.md describes it for page authors.

// Message types from the page.
const (
	msgLogin  = "login"  // token: the first message, within the login timeout
	msgAccept = "accept" // call_id: take a ringing call
	msgReject = "reject" // call_id: stop ringing for this agent
	msgAnswer = "answer" // call_id, sdp: the page's SDP answer to the server's offer
	msgHangup = "hangup" // call_id: end the call (or reject it while it rings)
	msgPing   = "ping"   // keep-alive through proxies; answered "pong"
)

// Message types to the page.
const (
	msgReady     = "ready"     // logged in: agent, groups, ice_servers
	msgRing      = "ring"      // a call rings: call_id, caller, dialled, channel, keyword, landing_page
	msgCancel    = "cancel"    // call_id, reason: the call stopped ringing for this agent
	msgOffer     = "offer"     // call_id, sdp: the server's SDP offer for the accepted call
	msgConnected = "connected" // call_id: the call's media is up
	msgEnded     = "hangup"    // call_id, reason: the call ended
	msgPong      = "pong"
	msgError     = "error" // error, detail, call_id: a message was refused
)

// Error codes in "error" messages (and close reasons).
const (
	errMalformed    = "malformed"     // not a JSON object of the protocol
	errUnknownType  = "unknown_type"  // a type the protocol does not have
	errBadField     = "bad_field"     // a field missing or out of bounds
	errUnknownCall  = "unknown_call"  // no such call for this agent
	errCallTaken    = "call_taken"    // another agent accepted first
	errBusy         = "busy"          // the agent is in a call already
	errUnauthorized = "unauthorized"  // wrong or revoked agent token
	errLoginFirst   = "login_first"   // the first message must be a login
	errLoginTimeout = "login_timeout" // no login in time
	errTooBig       = "too_big"       // a message over the size limit (the connection closes, 1009)
	errSlowAgent    = "slow_agent"    // the page did not read its messages (the connection closes)
	errTooMany      = "too_many"      // the customer has too many agent pages open
)

// errorCodes are every error code, for the metric's labels.
var errorCodes = []string{errMalformed, errUnknownType, errBadField, errUnknownCall, errCallTaken, errBusy,
	errUnauthorized, errLoginFirst, errLoginTimeout, errTooBig, errSlowAgent, errTooMany}

// inMsg is a message from the page. Fields a type does not use must be absent.
type inMsg struct {
	Type   string `json:"type"`
	Token  string `json:"token,omitempty"`
	CallID string `json:"call_id,omitempty"`
	SDP    string `json:"sdp,omitempty"`
}

// outMsg is a message to the page.
type outMsg struct {
	Type        string      `json:"type"`
	CallID      string      `json:"call_id,omitempty"`
	Agent       string      `json:"agent,omitempty"`
	Groups      []string    `json:"groups,omitempty"`
	ICEServers  []ICEServer `json:"ice_servers,omitempty"`
	Caller      string      `json:"caller,omitempty"`
	Dialled     string      `json:"dialled,omitempty"`
	Group       string      `json:"group,omitempty"`
	Channel     string      `json:"channel,omitempty"`
	Keyword     string      `json:"keyword,omitempty"`
	LandingPage string      `json:"landing_page,omitempty"`
	RingSeconds int         `json:"ring_seconds,omitempty"`
	SDP         string      `json:"sdp,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	Error       string      `json:"error,omitempty"`
	Detail      string      `json:"detail,omitempty"`
}

// protoError is a refused message: its code and what was wrong.
type protoError struct {
	code   string
	detail string
	callID string
}

func (e *protoError) Error() string { return e.code + ": " + e.detail }

func refuse(code, callID, f string, args ...any) *protoError {
	return &protoError{code: code, callID: callID, detail: fmt.Sprintf(f, args...)}
}

// maxCallID bounds call ids (trackline's are 26 characters).
const maxCallID = 64

// decode parses and validates one message from the page.
func decode(b []byte) (inMsg, *protoError) {
	var m inMsg
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return m, refuse(errMalformed, "", "malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return m, refuse(errBadField, "", "%s: must be a %s", te.Field, te.Type)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return m, refuse(errMalformed, "", "empty or truncated JSON")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return m, refuse(errBadField, "", "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return m, refuse(errMalformed, "", "not a JSON object")
	}
	if dec.More() {
		return m, refuse(errMalformed, "", "trailing data after the JSON object")
	}
	has := func(field string, v string, max int) *protoError {
		if v == "" {
			return refuse(errBadField, m.CallID, "%s: required for %q", field, m.Type)
		}
		if len(v) > max {
			return refuse(errBadField, "", "%s: longer than %d bytes", field, max)
		}
		return nil
	}
	none := func(field, v string) *protoError {
		if v != "" {
			return refuse(errBadField, "", "%s: not allowed in %q", field, m.Type)
		}
		return nil
	}
	var checks []*protoError
	switch m.Type {
	case msgLogin:
		checks = []*protoError{has("token", m.Token, 128), none("call_id", m.CallID), none("sdp", m.SDP)}
	case msgAccept, msgReject, msgHangup:
		checks = []*protoError{has("call_id", m.CallID, maxCallID), none("token", m.Token), none("sdp", m.SDP)}
	case msgAnswer:
		checks = []*protoError{has("call_id", m.CallID, maxCallID), has("sdp", m.SDP, 1<<20), none("token", m.Token)}
	case msgPing:
		checks = []*protoError{none("token", m.Token), none("call_id", m.CallID), none("sdp", m.SDP)}
	case "":
		return m, refuse(errBadField, "", "type: required")
	default:
		return m, refuse(errUnknownType, "", "type %q: want one of login, accept, reject, answer, hangup, ping", textutil.Clip(m.Type, 32))
	}
	for _, e := range checks {
		if e != nil {
			return m, e
		}
	}
	return m, nil
}
