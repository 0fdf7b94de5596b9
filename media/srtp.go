package media

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/trackline/trackline/callseam"
)

// SRTP on the trunk's leg, keyed with SDES (RFC 4568): when the trunk's offer is RTP/SAVP
// with an a=crypto line of a suite the anchor knows, the caller's leg answers RTP/SAVP with
// a key of the anchor's own, decrypts what the trunk sends and encrypts what it sends the
// trunk. The business line's leg and the recording see plain RTP. The packet transforms are
// pion/srtp's; what is written here is only the SDES attribute (parse and format) and where
// the transforms sit on the relay's path.
//
// RFC 3711 §3.3.2 replay protection is on (a 64-packet window); a packet that fails
// authentication or is replayed is dropped and counted (trackline_rtp_dropped_total
// reasons srtp_auth and srtp_replay, and the call's bad_rtp). RTCP ends at the anchor, as
// without SRTP, so SRTCP is neither decrypted nor sent.

// sdesSuite is the one crypto suite taken: RFC 4568 §6.2.1, the default of RFC 3711.
const sdesSuite = "AES_CM_128_HMAC_SHA1_80"

const (
	sdesKeyLen  = 16 // AES-128 master key
	sdesSaltLen = 14 // master salt
	srtpTagLen  = 10 // HMAC-SHA1-80: what encryption adds to a packet
	srtpReplay  = 64 // replay window, in packets
)

// sdes is one usable a=crypto attribute.
type sdes struct {
	tag int
	key [sdesKeyLen + sdesSaltLen]byte
}

// line is the attribute's value: "<tag> <suite> inline:<key||salt>" (RFC 4568 §9.1).
func (c *sdes) line() string {
	return strconv.Itoa(c.tag) + " " + sdesSuite + " inline:" + base64.StdEncoding.EncodeToString(c.key[:])
}

var errSDES = errors.New("a=crypto")

// parseSDES reads an a=crypto value. Only the suite AES_CM_128_HMAC_SHA1_80 with a single
// inline key, no MKI and no session parameters is taken (RFC 4568 §6.1: an answerer picks
// one of the offered lines it supports; the others are simply not chosen).
func parseSDES(v string) (sdes, error) {
	var c sdes
	f := strings.Fields(v)
	if len(f) < 3 {
		return c, fmt.Errorf("%w: %q: want tag, suite and key", errSDES, v)
	}
	if len(f) > 3 {
		return c, fmt.Errorf("%w: session parameters %q not supported", errSDES, strings.Join(f[3:], " "))
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999_999_999 || len(f[0]) > 10 {
		return c, fmt.Errorf("%w: tag %q", errSDES, f[0])
	}
	c.tag = tag
	if f[1] != sdesSuite {
		return c, fmt.Errorf("%w: suite %q not supported", errSDES, f[1])
	}
	params := strings.Split(f[2], ";")
	if len(params) != 1 {
		return c, fmt.Errorf("%w: more than one key", errSDES)
	}
	inline, ok := strings.CutPrefix(params[0], "inline:")
	if !ok {
		return c, fmt.Errorf("%w: key method not inline", errSDES)
	}
	keyText, rest, _ := strings.Cut(inline, "|")
	if strings.Contains(rest, ":") || strings.Count(rest, "|") > 0 {
		// A lifetime is fine (the anchor never sends 2^31 packets under one key); an MKI
		// ("|1:4") is not supported.
		return c, fmt.Errorf("%w: MKI not supported", errSDES)
	}
	key, err := base64.StdEncoding.DecodeString(keyText)
	if err != nil || len(key) != len(c.key) {
		return c, fmt.Errorf("%w: key is not %d bytes of base64", errSDES, len(c.key))
	}
	copy(c.key[:], key)
	return c, nil
}

// newSDES makes the anchor's own key, with the tag of the offer's line it answers.
func newSDES(tag int) sdes {
	c := sdes{tag: tag}
	rand.Read(c.key[:])
	return c
}

// srtpLeg is a leg's SRTP state: the far end's key (to decrypt what it sends) and the
// anchor's key (to encrypt what it is sent). Used under the session's mu only, by the loop
// that owns the session (and by Rewrite, which swaps it).
type srtpLeg struct {
	remote, local sdes
	in, out       *srtp.Context
	hdr           rtp.Header // reused: the transforms read the header into it
}

// newSRTPLeg keys a leg with the far end's offered line and a fresh key of the anchor's.
func newSRTPLeg(remote sdes) (*srtpLeg, error) {
	l := &srtpLeg{remote: remote, local: newSDES(remote.tag)}
	var err error
	l.in, err = srtp.CreateContext(remote.key[:sdesKeyLen], remote.key[sdesKeyLen:], srtp.ProtectionProfileAes128CmHmacSha1_80,
		srtp.SRTPReplayProtection(srtpReplay))
	if err != nil {
		return nil, fmt.Errorf("srtp context: %w", err)
	}
	l.out, err = srtp.CreateContext(l.local.key[:sdesKeyLen], l.local.key[sdesKeyLen:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		return nil, fmt.Errorf("srtp context: %w", err)
	}
	return l, nil
}

// rekey takes a new key from the far end (a re-offer, RFC 4568 §7.1.4); the anchor's own
// key and stream go on. The same key keeps the state it has.
func (l *srtpLeg) rekey(remote sdes) error {
	if remote.key == l.remote.key {
		l.remote.tag, l.local.tag = remote.tag, remote.tag
		return nil
	}
	in, err := srtp.CreateContext(remote.key[:sdesKeyLen], remote.key[sdesKeyLen:], srtp.ProtectionProfileAes128CmHmacSha1_80,
		srtp.SRTPReplayProtection(srtpReplay))
	if err != nil {
		return fmt.Errorf("srtp context: %w", err)
	}
	l.in, l.remote, l.local.tag = in, remote, remote.tag
	return nil
}

// srtpVerdict is why a packet did not decrypt.
type srtpVerdict uint8

const (
	srtpOK srtpVerdict = iota
	srtpAuthFailed
	srtpReplayed
)

// decrypt authenticates and decrypts p in place; on success it returns the plain packet
// (p without its tag).
func (l *srtpLeg) decrypt(p []byte) ([]byte, srtpVerdict) {
	out, err := l.in.DecryptRTP(p, p, &l.hdr)
	if err != nil {
		// pion/srtp's replay error is not exported; its text names it.
		if !errors.Is(err, srtp.ErrFailedToVerifyAuthTag) && strings.Contains(err.Error(), "duplicated") {
			return nil, srtpReplayed
		}
		return nil, srtpAuthFailed
	}
	return out, srtpOK
}

// encrypt encrypts p in place; the packet grows by srtpTagLen, which p's capacity must
// hold. It returns false when it does not, or the transform fails.
func (l *srtpLeg) encrypt(p []byte) ([]byte, bool) {
	if cap(p)-len(p) < srtpTagLen {
		return nil, false
	}
	out, err := l.out.EncryptRTP(p, p, &l.hdr)
	if err != nil || &out[0] != &p[0] {
		return nil, false
	}
	return out, true
}

// offersSRTP tells, cheaply, whether an offer asks for SRTP: such a call is anchored even
// when nothing else needs the anchor. parseDesc decides what the offer really holds.
func offersSRTP(offer []byte) bool { return bytes.Contains(offer, []byte("RTP/SAVP")) }

// takeCrypto takes the keys of a leg's new SDP (a re-offer or an answer in dialog): the
// caller's leg follows RTP/SAVP on and off and takes a new key; the business line's leg
// is offered RTP/AVP only. Called under the session's mu.
func (l *leg) takeCrypto(d *desc) error {
	if l.side != caller {
		if d.savp {
			return fmt.Errorf("%w: RTP/SAVP from the business line", callseam.ErrNotAcceptable)
		}
		return nil
	}
	switch {
	case !d.savp:
		l.srtp = nil
	case l.srtp == nil:
		sl, err := newSRTPLeg(d.crypto[0])
		if err != nil {
			return err
		}
		l.srtp = sl
	default:
		return l.srtp.rekey(d.crypto[0])
	}
	return nil
}

// localKey is the anchor's SDES key for the leg's SDP, nil when the leg is plain RTP.
func (l *leg) localKey() *sdes {
	if l.srtp == nil {
		return nil
	}
	return &l.srtp.local
}
