package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"hash"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/store"
	"golang.org/x/net/idna"
)

// The AMP endpoint serves <amp-call-tracking config="...">, which the AMP runtime fetches
// once per page as a CORS GET with credentials (docs/api.md). Its request shape
// (ampproject/amphtml spec/amp-cors-requests.md): an Origin header, the publisher's own
// origin or its AMP cache origin (https://<domain with - doubled and . as ->.cdn.ampproject.org);
// or, on the publisher's origin without one, the header AMP-Same-Origin: true; and the
// query parameter __amp_source_origin, the publisher's origin.
//
// The visitor keeps one session across fetches, found in this order:
//  1. session_id in the query: the page puts CLIENT_ID(tl_sid) there, which on the
//     publisher's origin is the tl_sid cookie the DNI script set: the visitor's session of
//     the site's other pages;
//  2. the cookie tl_amp_<site key> this endpoint sets (HttpOnly; on https SameSite=None,
//     Secure and Partitioned, so it also works from the AMP cache where the browser allows
//     partitioned cookies);
//  3. an AMP client id in session_id (what CLIENT_ID gives on the AMP cache, or before the
//     script ran): remembered in memory, under a keyed hash, for a lease after its last use.
//
// Only when none of them names a live session is a new one made, under the same per-client
// and per-site limits as POST /v1/sessions.

// ampCacheDomain is the Google AMP Cache, the one AMP cache in service
// (https://cdn.ampproject.org/caches.json).
const ampCacheDomain = "cdn.ampproject.org"

// ampCacheOrigin is the AMP cache origin of a publisher origin (scheme://host[:port]), or ""
// for an origin the cache cannot serve (not a domain name, or with a port).
//
// The cache's domain prefix (amp.dev, "AMP Cache URL Format"): the host in Unicode, every
// "-" doubled and every "." made "-", back to IDNA; a prefix with "--" at its third and fourth
// characters gets "0-" before and "-0" after it (it would read as an IDNA label); a prefix
// that is not a valid label of at most 63 characters is replaced by the base32 of the
// host's SHA-256 (lower case, no padding).
func ampCacheOrigin(origin string) string {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Port() != "" || u.Path != "" {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if _, err := netip.ParseAddr(host); err == nil || !strings.Contains(host, ".") {
		return "" // an IP literal or a bare name: the cache serves domains only
	}
	return "https://" + ampCachePrefix(host) + "." + ampCacheDomain
}

func ampCachePrefix(host string) string {
	uni, err := idna.ToUnicode(host)
	if err == nil {
		p := strings.ReplaceAll(uni, "-", "--")
		p = strings.ReplaceAll(p, ".", "-")
		if len(p) >= 4 && p[2] == '-' && p[3] == '-' {
			p = "0-" + p + "-0"
		}
		if ascii, err := idna.Lookup.ToASCII(p); err == nil && len(ascii) <= 63 && ascii != "" {
			return ascii
		}
	}
	sum := sha256.Sum256([]byte(host))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// ampOriginAllowed reports whether a request's Origin may read the customer's AMP answer:
// one of its allowed origins, or the AMP cache origin of one.
func ampOriginAllowed(c *store.Customer, origin string) bool {
	if slices.Contains(c.AllowedOrigins, origin) {
		return true
	}
	if !strings.HasSuffix(origin, "."+ampCacheDomain) || !strings.HasPrefix(origin, "https://") {
		return false
	}
	for _, o := range c.AllowedOrigins {
		if ampCacheOrigin(o) == origin {
			return true
		}
	}
	return false
}

// ampNumber answers <amp-call-tracking>: {"phoneNumber", "formattedPhoneNumber"}.
func (a *API) ampNumber(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	key := q.Get("site_key")
	if !pool.ValidSiteKey(key) {
		a.rejected.WithLabelValues("bad_request").Inc()
		return errStatus(http.StatusBadRequest, "site_key", "site_key: missing or malformed")
	}
	source := q.Get("__amp_source_origin")
	if err := checkURL("__amp_source_origin", source); err != nil {
		a.rejected.WithLabelValues("bad_request").Inc()
		return err
	}
	clientID := q.Get("session_id")
	if err := checkParam("session_id", clientID); err != nil {
		a.rejected.WithLabelValues("bad_request").Inc()
		return err
	}
	v := pool.Visit{LandingURL: source}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&v.UTMSource, "utm_source"}, {&v.UTMMedium, "utm_medium"}, {&v.UTMCampaign, "utm_campaign"},
		{&v.UTMTerm, "utm_term"}, {&v.UTMContent, "utm_content"}, {&v.Gclid, "gclid"}} {
		*f.dst = q.Get(f.name)
		if err := checkParam(f.name, *f.dst); err != nil {
			a.rejected.WithLabelValues("bad_request").Inc()
			return err
		}
	}
	c, err := a.pool.CustomerBySiteKey(key)
	if err != nil {
		a.rejected.WithLabelValues("unknown_site_key").Inc()
		return errStatus(http.StatusNotFound, "site_key", "unknown site key")
	}
	// CORS as AMP asks (amp-cors-requests.md, "Verify CORS requests"), before anything
	// is stored.
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	switch {
	case origin != "" && !ampOriginAllowed(&c, origin):
		a.rejected.WithLabelValues("origin").Inc()
		return errStatus(http.StatusForbidden, "", "origin not allowed for this site key")
	case origin == "" && r.Header.Get("AMP-Same-Origin") != "true":
		a.rejected.WithLabelValues("origin").Inc()
		return errStatus(http.StatusForbidden, "", "an AMP request has an Origin header or AMP-Same-Origin: true")
	case source != "" && !slices.Contains(c.AllowedOrigins, source):
		a.rejected.WithLabelValues("origin").Inc()
		return errStatus(http.StatusForbidden, "__amp_source_origin", "source origin not allowed for this site key")
	}
	if origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if source != "" {
		h.Set("AMP-Access-Control-Allow-Source-Origin", source)
		h.Set("Access-Control-Expose-Headers", "AMP-Access-Control-Allow-Source-Origin")
	}
	if !pool.InService(&c, a.now()) {
		return pool.ErrCustomerEnded
	}

	cookieName := "tl_amp_" + c.SiteKey
	switch {
	case pool.ValidSessionID(clientID):
		v.SessionID = clientID
	case cookieSession(r, cookieName) != "":
		v.SessionID = cookieSession(r, cookieName)
	case clientID != "":
		v.SessionID, _ = a.ampClients.get(c.SiteKey, clientID)
	}
	ad := admit{a: a, w: w, site: c.SiteKey, addr: a.clientAddr(r)}
	v.Admit = ad.check
	l, err := a.pool.Assign(r.Context(), c.ID, v)
	if err != nil {
		return err
	}
	if clientID != "" && !pool.ValidSessionID(clientID) {
		a.ampClients.put(c.SiteKey, clientID, l.SessionID)
	}
	secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	ck := &http.Cookie{Name: cookieName, Value: l.SessionID, Path: "/v1/amp/", MaxAge: int(a.cfg.Lease.Seconds()), HttpOnly: true}
	if secure {
		// Read from the AMP cache's pages too: a third-party cookie, partitioned by the
		// top-level site where the browser does that (CHIPS).
		ck.Secure, ck.SameSite, ck.Partitioned = true, http.SameSiteNoneMode, true
	} else {
		ck.SameSite = http.SameSiteLaxMode
	}
	http.SetCookie(w, ck)
	writeJSON(w, http.StatusOK, struct {
		PhoneNumber          string `json:"phoneNumber"`
		FormattedPhoneNumber string `json:"formattedPhoneNumber"`
	}{l.Number, l.Formatted})
	return nil
}

// cookieSession is the session id in the named cookie, or "".
func cookieSession(r *http.Request, name string) string {
	ck, err := r.Cookie(name)
	if err != nil || !pool.ValidSessionID(ck.Value) {
		return ""
	}
	return ck.Value
}

// ampClients remembers, in memory only, the session of an AMP client id at a site, for one
// lease after its last use. Entries are found by a keyed hash (HMAC-SHA256) of the site key
// and the client id under a random key made at start; at most max entries (when full, the
// expired ones are dropped; if none is, nothing new is remembered and such a visitor gets a
// new session per page). A restart, or another node, forgets them: the visitor then gets a
// new session once.
type ampClients struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu  sync.Mutex
	mac hash.Hash
	m   map[clientID]ampEntry
	in  []byte            // the HMAC's input, reused (mu)
	sum [sha256.Size]byte // its output, reused (mu)
}

type ampEntry struct {
	session string
	until   time.Time
}

func newAMPClients(ttl time.Duration, maxEntries int, now func() time.Time) *ampClients {
	var key [32]byte
	rand.Read(key[:])
	c := &ampClients{ttl: ttl, max: maxEntries, now: now, mac: hmac.New(sha256.New, key[:]), m: map[clientID]ampEntry{}}
	clear(key[:])
	return c
}

// id is the entry's key of the client id at site; with mu held.
func (c *ampClients) id(site, cid string) clientID {
	c.in = append(append(append(c.in[:0], site...), 0), cid...)
	c.mac.Reset()
	c.mac.Write(c.in)
	var id clientID
	copy(id[:], c.mac.Sum(c.sum[:0]))
	clear(c.in)
	return id
}

// get answers the session remembered for the client id at site, if any and not expired.
func (c *ampClients) get(site, cid string) (string, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[c.id(site, cid)]
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.session, true
}

// put remembers session for the client id at site until a lease from now.
func (c *ampClients) put(site, cid, session string) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return
		}
	}
	c.m[c.id(site, cid)] = ampEntry{session: session, until: now.Add(c.ttl)}
}
