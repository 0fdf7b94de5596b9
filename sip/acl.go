package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// sourceIP is the IP of a message's source ("host:port"), or the invalid Addr.
func sourceIP(src string) netip.Addr {
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trunkFor returns the trunk whose sources contain the request's source address.
func (s *Switch) trunkFor(req *sipmsg.Request) (*Trunk, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return nil, false
	}
	ip := ap.Addr().Unmap()
	for i := range s.cfg.Trunks {
		for _, p := range s.cfg.Trunks[i].Sources {
			if p.Contains(ip) {
				return &s.cfg.Trunks[i], true
			}
		}
	}
	return nil, false
}

const realm = "trackline"

// nonceKeeper makes stateless, expiring nonces: time + HMAC over it with a process secret.
type nonceKeeper struct{ key [32]byte }

func newNonceKeeper() *nonceKeeper {
	n := &nonceKeeper{}
	rand.Read(n.key[:])
	return n
}

func (n *nonceKeeper) make(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (n *nonceKeeper) valid(nonce string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false
	}
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return now.Sub(issued) < 5*time.Minute && !issued.After(now.Add(time.Minute))
}

// authorize checks RFC 3261 §22 digest credentials of a trunk that has them. It returns
// the status to answer when the request is not authorized (401 with a challenge, or 403).
func (s *Switch) authorize(req *sipmsg.Request, t *Trunk) (int, sipmsg.Header) {
	if t.Password == "" {
		return 0, nil
	}
	now := s.now()
	challenge := func() (int, sipmsg.Header) {
		c := digest.Challenge{Realm: realm, Nonce: s.nonces.make(now), Algorithm: "MD5", QOP: []string{"auth"}}
		return 401, sipmsg.NewHeader("WWW-Authenticate", c.String())
	}
	h := req.GetHeader("Authorization")
	if h == nil {
		return challenge()
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Realm != realm || cred.Username != t.Username {
		return 403, nil
	}
	if !s.nonces.valid(cred.Nonce, now) {
		return challenge() // stale: ask again
	}
	want, err := digest.Digest(&digest.Challenge{Realm: realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: qops(cred.QOP)},
		digest.Options{Method: string(req.Method), URI: cred.URI, Username: t.Username, Password: t.Password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return 403, nil
	}
	return 0, nil
}

func qops(q string) []string {
	if q == "" {
		return nil
	}
	return strings.Split(q, ",")
}
