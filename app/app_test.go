package app

import (
	"bytes"
	"context"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/internal/storetest"
	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/privacy"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// env is the web app on a real store and pool, served by httptest, with two customers (a
// and b) and their users.
type env struct {
	t    *testing.T
	db   *store.DB
	pool *pool.Pool
	app  *App
	srv  *httptest.Server
	now  time.Time
}

const password = "a long enough password"

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.Open(t)
	p, err := pool.New(db, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := p.CreateCustomer(ctx, store.Customer{ID: id, Name: strings.ToUpper(id) + " BV", Status: store.StatusActive,
			SiteKey: "site-key-of-" + id, BusinessLines: []string{"sip:+31852087972@127.0.0.1:5090"}}); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, db: db, pool: p, now: time.Now()}
	phc, err := accounts.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.User{
		{ID: "admin-a", CustomerID: "a", Email: "admin@a.example", Role: store.RoleAdmin},
		{ID: "member-a", CustomerID: "a", Email: "member@a.example", Role: store.RoleMember},
		{ID: "admin-b", CustomerID: "b", Email: "admin@b.example", Role: store.RoleAdmin},
		{ID: "op", Email: "op@example.com", Role: store.RoleOperator},
	} {
		u.PasswordHash, u.Created = phc, e.now
		if err := db.Write(ctx, func(tx *store.Tx) error { return tx.PutUser(&u) }); err != nil {
			t.Fatal(err)
		}
	}
	e.app, err = New(Config{}, db, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.app.Close)
	e.srv = httptest.NewServer(e.app.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// client is one browser: a cookie jar and no redirects followed (the tests look at them).
type client struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values, header map[string]string) answer {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	if raw, ok := header["body"]; ok { // a body as it is (a multipart upload)
		body = strings.NewReader(raw)
		delete(header, "body")
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if m := csrfMeta.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	return answer{res.StatusCode, res.Header, string(b)}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func (c *client) get(path string) answer { return c.do("GET", path, nil, nil) }

// post sends a form with the session's CSRF token.
func (c *client) post(path string, form url.Values) answer {
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", c.csrf)
	}
	return c.do("POST", path, form, nil)
}

func (c *client) login(email, pw string) answer {
	return c.do("POST", "/login", url.Values{"email": {email}, "password": {pw}}, nil)
}

// loggedIn logs the client in and loads a page, for its CSRF token.
func (e *env) loggedIn(email string) *client {
	e.t.Helper()
	c := e.client()
	if a := c.login(email, password); a.status != http.StatusSeeOther {
		e.t.Fatalf("login %s: %d %s", email, a.status, a.body)
	}
	if a := c.get("/account"); a.status != 200 || c.csrf == "" {
		e.t.Fatalf("account page: %d, csrf %q", a.status, c.csrf)
	}
	return c
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	if a := c.get("/c/a/"); a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/login?next=") {
		t.Fatalf("a page without a session: %d %s", a.status, a.header.Get("Location"))
	}
	if a := c.login("admin@a.example", "wrong password!!"); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "not right") {
		t.Fatalf("wrong password: %d", a.status)
	}
	if a := c.login("nobody@a.example", password); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "not right") {
		t.Fatalf("unknown account: %d", a.status)
	}
	a := c.login("ADMIN@a.example", password)
	if a.status != http.StatusSeeOther {
		t.Fatalf("right password: %d %s", a.status, a.body)
	}
	cookie := a.header.Get("Set-Cookie")
	for _, want := range []string{"trackline_app=", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	if a := c.get("/"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/c/a/" {
		t.Fatalf("home: %d %s", a.status, a.header.Get("Location"))
	}
	a = c.get("/c/a/calls")
	if a.status != 200 || !strings.Contains(a.body, "<h1>Calls</h1>") {
		t.Fatalf("calls page: %d", a.status)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(a.body, "<script>") || regexp.MustCompile(`<script(?: [^>]*)?>[^<]`).MatchString(strings.ReplaceAll(a.body, `type="application/json"`, "")) {
		t.Error("the page has inline script")
	}
	// Behind https the cookie is Secure and host-bound.
	h := e.client()
	if a := h.do("POST", "/login", url.Values{"email": {"admin@a.example"}, "password": {password}}, map[string]string{"X-Forwarded-Proto": "https"}); !strings.Contains(a.header.Get("Set-Cookie"), "__Host-trackline_app=") || !strings.Contains(a.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("cookie behind https: %q", a.header.Get("Set-Cookie"))
	}
	// Logging out ends the session on the server, not only in the browser.
	old := c.c.Jar.Cookies(mustURL(e.srv.URL))
	if a := c.post("/logout", nil); a.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", a.status)
	}
	replay := e.client()
	replay.c.Jar.SetCookies(mustURL(e.srv.URL), old)
	if a := replay.get("/c/a/"); a.status != http.StatusSeeOther {
		t.Fatalf("the old cookie after logout: %d", a.status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestLoginLimit: after five failures an account's logins are refused for a while, even
// with the right password; other accounts are not affected.
func TestLoginLimit(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for range limitFailures {
		if a := c.login("member@a.example", "wrong password!!"); a.status != http.StatusUnauthorized {
			t.Fatalf("failure: %d", a.status)
		}
	}
	if a := c.login("member@a.example", password); a.status != http.StatusTooManyRequests {
		t.Fatalf("the right password after five failures: %d", a.status)
	}
	if a := c.login("admin@a.example", password); a.status != http.StatusSeeOther {
		t.Fatalf("another account: %d", a.status)
	}
}

// TestCSRF: a change without the session's token, with a wrong one, or from another origin
// is refused and changes nothing.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("admin@a.example")
	form := url.Values{"business_lines": {"sip:+31850000000@127.0.0.1:5091"}, "display_format": {"national"}}
	for name, a := range map[string]answer{
		"no token":     c.do("POST", "/c/a/settings", form, nil),
		"wrong token":  c.do("POST", "/c/a/settings", url.Values{"csrf": {"x" + c.csrf}, "business_lines": form["business_lines"]}, nil),
		"other origin": c.do("POST", "/c/a/settings", url.Values{"csrf": {c.csrf}, "business_lines": form["business_lines"]}, map[string]string{"Origin": "https://evil.example"}),
	} {
		if a.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, a.status)
		}
	}
	if cu, _ := e.pool.Customer("a"); cu.BusinessLines[0] != "sip:+31852087972@127.0.0.1:5090" {
		t.Fatalf("a refused change was applied: %v", cu.BusinessLines)
	}
	if a := c.post("/c/a/settings", form); a.status != http.StatusSeeOther {
		t.Fatalf("with the token: %d %s", a.status, a.body)
	}
	if cu, _ := e.pool.Customer("a"); cu.BusinessLines[0] != "sip:+31850000000@127.0.0.1:5091" {
		t.Fatalf("the change was not applied: %v", cu.BusinessLines)
	}
}

// TestOtherCustomersAreMissing: a user of one customer gets the 404 of a missing record for
// every URL of another customer; an operator sees both.
func TestOtherCustomersAreMissing(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("admin@a.example")
	missing := c.get("/c/a/calls/01NOSUCHCALL0000000000000")
	if missing.status != http.StatusNotFound {
		t.Fatalf("a missing call: %d", missing.status)
	}
	for _, p := range []string{"/c/b/", "/c/b/calls", "/c/b/settings", "/c/b/users", "/c/b/numbers", "/c/b/calls/01NOSUCHCALL0000000000000", "/c/zz/"} {
		a := c.get(p)
		if a.status != http.StatusNotFound || a.body != missing.body {
			t.Errorf("%s: %d (the same page as a missing record: %v)", p, a.status, a.body == missing.body)
		}
	}
	if a := c.post("/c/b/settings", url.Values{"business_lines": {"sip:x@127.0.0.1"}}); a.status != http.StatusNotFound {
		t.Errorf("a change to another customer: %d", a.status)
	}
	if a := c.get("/operator"); a.status != http.StatusNotFound {
		t.Errorf("the operator page for a customer's user: %d", a.status)
	}
	op := e.loggedIn("op@example.com")
	for _, p := range []string{"/c/a/", "/c/b/calls", "/operator"} {
		if a := op.get(p); a.status != 200 {
			t.Errorf("operator %s: %d", p, a.status)
		}
	}
}

// TestMemberCannotAdminister: a member reads and annotates, but changing settings, inviting
// and the audit log are an admin's.
func TestMemberCannotAdminister(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("member@a.example")
	if a := c.get("/c/a/settings"); a.status != 200 {
		t.Fatalf("settings page: %d", a.status)
	}
	if a := c.post("/c/a/settings", url.Values{"business_lines": {"sip:x@127.0.0.1"}}); a.status != http.StatusForbidden {
		t.Errorf("member changes settings: %d", a.status)
	}
	if a := c.post("/c/a/users", url.Values{"email": {"new@a.example"}, "role": {"admin"}}); a.status != http.StatusForbidden {
		t.Errorf("member invites: %d", a.status)
	}
	if a := c.get("/c/a/audit"); a.status != http.StatusForbidden {
		t.Errorf("member reads the audit log: %d", a.status)
	}
	if _, err := e.db.UserByEmail("new@a.example"); err == nil {
		t.Error("the member's invitation was made")
	}
}

// TestInvitation: an admin invites; the link sets a password once and logs in; used again,
// or expired, it is gone.
func TestInvitation(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("admin@a.example")
	a := c.post("/c/a/users", url.Values{"email": {"New@A.example"}, "role": {"member"}})
	m := regexp.MustCompile(`/invite/[A-Za-z0-9_-]+`).FindString(a.body)
	if a.status != 200 || m == "" {
		t.Fatalf("invite: %d, link %q", a.status, m)
	}
	n := e.client()
	if a := n.get(m); a.status != 200 || !strings.Contains(a.body, "new@a.example") {
		t.Fatalf("invitation page: %d", a.status)
	}
	if a := n.do("POST", m, url.Values{"password": {"short"}, "confirm": {"short"}}, nil); a.status != http.StatusBadRequest {
		t.Fatalf("a short password: %d", a.status)
	}
	if a := n.do("POST", m, url.Values{"password": {password}, "confirm": {password}}, nil); a.status != http.StatusSeeOther {
		t.Fatalf("accept: %d %s", a.status, a.body)
	}
	if a := n.get("/c/a/calls"); a.status != 200 {
		t.Fatalf("the new member's session: %d", a.status)
	}
	if a := e.client().do("POST", m, url.Values{"password": {password}, "confirm": {password}}, nil); a.status != http.StatusGone {
		t.Fatalf("the link used again: %d", a.status)
	}
	// An expired invitation.
	token, _, err := accounts.Invite(context.Background(), e.db, "test", store.User{CustomerID: "a", Email: "late@a.example", Role: store.RoleMember},
		time.Millisecond, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if a := e.client().get(accounts.InvitePath(token)); a.status != http.StatusGone {
		t.Fatalf("an expired invitation: %d", a.status)
	}
	if a := e.client().do("POST", accounts.InvitePath(token), url.Values{"password": {password}, "confirm": {password}}, nil); a.status != http.StatusGone {
		t.Fatalf("an expired invitation, accepted: %d", a.status)
	}
}

func TestMessagesInBothLanguages(t *testing.T) {
	for key := range messages["en"] {
		if _, ok := messages["nl"][key]; !ok {
			t.Errorf("no Dutch for %q", key)
		}
	}
	for key := range messages["nl"] {
		if _, ok := messages["en"][key]; !ok {
			t.Errorf("no English for %q", key)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/c/a/calls?x=1": "/c/a/calls?x=1", "//evil.example": "/", "https://evil.example": "/",
		"/\\evil.example": "/", "/a\r\nSet-Cookie: x": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCallAttributionInWords: a call on a pool number explains the visit that had it, the
// lease, and the rule that gave the visit its channel.
func TestCallAttributionInWords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.PutChannel(ctx, "a", store.Channel{Name: "Newsletter", Rules: []store.ChannelRule{{Param: "utm_source", Pattern: "news*"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.ImportNumbers(ctx, "a", []pool.NumberInput{{Number: "+31850000001"}}); err != nil {
		t.Fatal(err)
	}
	l, err := e.pool.Assign(ctx, "a", pool.Visit{LandingURL: "https://shop.example/?utm_source=newsletter-dec", UTMSource: "newsletter-dec"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	at, err := e.pool.Attribute(l.Number, start)
	if err != nil || at.Session == nil {
		t.Fatalf("attribute: %+v %v", at, err)
	}
	call := store.Call{ID: pool.NewID(start), CustomerID: "a", Dialled: l.Number, Start: start.UTC(), Channel: at.Channel,
		SessionID: at.Session.ID, Candidates: at.Candidates, LandingPage: at.Session.LandingPage}
	if err := e.db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&call) }); err != nil {
		t.Fatal(err)
	}
	c := e.loggedIn("member@a.example")
	a := c.get("/c/a/calls/" + call.ID)
	for _, want := range []string{"one visit of your site", "held the number from", "from your rule: utm_source news*", "Newsletter"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the call page lacks %q", want)
		}
	}
}

// TestPromptUploadRefusals: a file that is not a WAV, one that is too large, and an upload by
// a member each get a clear error and change nothing.
func TestPromptUploadRefusals(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.app.promptDir = dir
	upload := func(c *client, body []byte) answer {
		t.Helper()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("csrf", c.csrf)
		mw.WriteField("kind", "disclaimer")
		fw, _ := mw.CreateFormFile("file", "prompt.wav")
		fw.Write(body)
		mw.Close()
		return c.do("POST", "/c/a/prompts", nil, map[string]string{"Content-Type": mw.FormDataContentType(), "body": buf.String()})
	}
	admin := e.loggedIn("admin@a.example")
	if a := upload(admin, []byte("ID3\x03 an mp3, not a WAV")); a.status != http.StatusBadRequest || !strings.Contains(a.body, "not a WAV file") {
		t.Errorf("a non-WAV upload: %d", a.status)
	}
	if a := upload(admin, bytes.Repeat([]byte{0}, maxPromptUpload+maxForm+1)); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized upload: %d", a.status)
	}
	member := e.loggedIn("member@a.example")
	if a := upload(member, []byte("RIFF")); a.status != http.StatusForbidden {
		t.Errorf("a member's upload: %d", a.status)
	}
	if c, _ := e.pool.Customer("a"); c.Prompts.Disclaimer != "" {
		t.Errorf("a refused upload set the disclaimer: %q", c.Prompts.Disclaimer)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("a refused upload left files: %v", files)
	}
}

// TestDutch: a Dutch browser gets the pages in Dutch; the lang cookie wins.
func TestDutch(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("admin@a.example")
	if a := c.do("GET", "/c/a/calls", nil, map[string]string{"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.8"}); !strings.Contains(a.body, "<h1>Gesprekken</h1>") || !strings.Contains(a.body, `lang="nl"`) {
		t.Error("a Dutch browser did not get Dutch")
	}
	if a := c.do("GET", "/c/a/calls", nil, map[string]string{"Accept-Language": "nl", "Cookie": "lang=en"}); !strings.Contains(a.body, "<h1>Calls</h1>") {
		t.Error("the lang cookie did not win")
	}
}

// TestRunPrunesExpiredSessions: an expired session is deleted by Run and refused before.
func TestRunPrunesExpiredSessions(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("admin@a.example")
	var clock atomic.Int64
	clock.Store(time.Now().Add(13 * time.Hour).UnixNano()) // past the 12 h session
	e.app.now = func() time.Time { return time.Unix(0, clock.Load()) }
	if a := c.get("/c/a/"); a.status != http.StatusSeeOther {
		t.Fatalf("an expired session: %d", a.status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.app.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cookies := c.c.Jar.Cookies(mustURL(e.srv.URL))
		if len(cookies) == 0 {
			t.Fatal("no cookie")
		}
		if _, err := e.db.AppSession(accounts.Hash(cookies[0].Value)); err != nil {
			break // pruned
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired session was not pruned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestTwoFactorLogin: TOTP is turned on only with a valid code for the shown secret; then a
// login needs the code as well as the password.
func TestTwoFactorLogin(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn("admin@a.example")
	page := c.get("/account")
	m := regexp.MustCompile(`name="secret" value="([A-Z2-7]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no secret on the account page")
	}
	secret := m[1]
	if a := c.post("/account/totp", url.Values{"secret": {secret}, "code": {"000000"}}); a.status != http.StatusBadRequest {
		t.Fatalf("a wrong code: %d", a.status)
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a := c.post("/account/totp", url.Values{"secret": {secret}, "code": {code}}); a.status != http.StatusSeeOther {
		t.Fatalf("turn on: %d %s", a.status, a.body)
	}
	n := e.client()
	if a := n.login("admin@a.example", password); a.status != http.StatusUnauthorized {
		t.Fatalf("a login without the code: %d", a.status)
	}
	code, _ = totp.GenerateCode(secret, time.Now())
	if a := n.do("POST", "/login", url.Values{"email": {"admin@a.example"}, "password": {password}, "code": {code}}, nil); a.status != http.StatusSeeOther {
		t.Fatalf("a login with the code: %d", a.status)
	}
}

// TestWebhooksPage: an admin adds an endpoint (its secret shown once), a bad URL is refused
// naming the field, a member may not change them, another customer's endpoint is missing,
// and an endpoint is disabled and removed.
func TestWebhooksPage(t *testing.T) {
	e := newEnv(t)
	e.app.webhooks, e.app.webhookAllow = true, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	c := e.loggedIn("admin@a.example")
	if a := c.post("/c/a/webhooks", url.Values{"url": {"http://crm.example/hook"}, "event": {"call.completed"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "url: ") {
		t.Fatalf("a plain-http URL: %d", a.status)
	}
	if a := c.post("/c/a/webhooks", url.Values{"url": {"http://127.0.0.1:9/hook"}, "event": {"call.nonsense"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "event_types: ") {
		t.Fatalf("an unknown event type: %d", a.status)
	}
	a := c.post("/c/a/webhooks", url.Values{"url": {"http://127.0.0.1:9/hook"}, "event": {"call.completed", "recording.ready"}})
	// The page escapes the secret's + as &#43;: the browser shows it as it is.
	if a.status != 200 || !regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{40,}`).MatchString(html.UnescapeString(a.body)) {
		t.Fatalf("add: %d", a.status)
	}
	eps, _ := e.db.Endpoints("a")
	if len(eps) != 1 || len(eps[0].EventTypes) != 2 || eps[0].URL != "http://127.0.0.1:9/hook" {
		t.Fatalf("endpoints %+v", eps)
	}
	id := eps[0].ID
	if a := c.get("/c/a/webhooks"); a.status != 200 || strings.Contains(html.UnescapeString(a.body), eps[0].Secret) {
		t.Fatalf("the page again: %d, shows the secret %v", a.status, strings.Contains(html.UnescapeString(a.body), eps[0].Secret))
	}
	member := e.loggedIn("member@a.example")
	if a := member.post("/c/a/webhooks/"+id, url.Values{"action": {"delete"}}); a.status != http.StatusForbidden {
		t.Errorf("a member removes an endpoint: %d", a.status)
	}
	other := e.loggedIn("admin@b.example")
	if a := other.post("/c/b/webhooks/"+id, url.Values{"action": {"delete"}}); a.status != http.StatusNotFound {
		t.Errorf("another customer's endpoint: %d", a.status)
	}
	if a := c.post("/c/a/webhooks/"+id, url.Values{"action": {"disable"}}); a.status != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", a.status, a.body)
	}
	if ep, _ := e.db.Endpoint("a", id); !ep.Disabled {
		t.Fatal("not disabled")
	}
	if a := c.post("/c/a/webhooks/"+id, url.Values{"action": {"delete"}}); a.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", a.status)
	}
	if eps, _ := e.db.Endpoints("a"); len(eps) != 0 {
		t.Fatalf("after delete: %+v", eps)
	}
}

// TestPrivacyShowsWebhookMessages: an admin's caller lookup on the privacy page lists the
// webhook messages of the caller's calls with the endpoint each went to and its state, and
// not another caller's; the erasure says how many went with the calls.
func TestPrivacyShowsWebhookMessages(t *testing.T) {
	e := newEnv(t)
	keys, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e.app.privacy = privacy.New(e.db, keys, t.TempDir(), e.pool)
	ctx := context.Background()
	if err := e.db.Write(ctx, func(tx *store.Tx) error {
		return tx.PutEndpoint(&store.Endpoint{ID: "crm", CustomerID: "a", URL: "https://crm.a.example/hook",
			EventTypes: []store.EventType{store.EventCallRinging, store.EventCallCompleted},
			Secret:     store.SecretPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	}); err != nil {
		t.Fatal(err)
	}
	key, err := keys.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	addCall := func(number string) store.Call {
		t.Helper()
		now := time.Now()
		c := store.Call{ID: pool.NewID(now), CustomerID: "a", Dialled: "+31850000001", Caller: number,
			CallerPseudonym: key.Pseudonym(number), Start: now, End: now.Add(time.Minute), Disposition: "answered"}
		if err := e.db.Write(ctx, func(tx *store.Tx) error { return tx.PutCall(&c) }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	mine, theirs := addCall("+31612345678"), addCall("+31687654321")
	sent, err := e.db.WebhookMessagesOf(ctx, "a", []string{mine.ID, theirs.ID})
	if err != nil || len(sent) != 4 {
		t.Fatalf("the calls' messages: %d, %v", len(sent), err)
	}

	member := e.loggedIn("member@a.example")
	if a := member.post("/c/a/privacy/lookup", url.Values{"number": {"0612345678"}}); a.status != http.StatusForbidden {
		t.Errorf("a member looks a caller up: %d", a.status)
	}
	c := e.loggedIn("admin@a.example")
	a := c.post("/c/a/privacy/lookup", url.Values{"number": {"0612345678"}})
	if a.status != 200 {
		t.Fatalf("lookup: %d %s", a.status, a.body)
	}
	i := strings.Index(a.body, `<table id="caller-webhooks"`)
	if i < 0 {
		t.Fatalf("no webhook messages on the page:\n%s", a.body)
	}
	table := a.body[i : i+strings.Index(a.body[i:], "</table>")]
	for _, m := range sent {
		if in := strings.Contains(table, m.ID); in != (m.Subject == mine.ID) {
			t.Errorf("message %s (%s of call %s) listed: %v", m.ID, m.Type, m.Subject, in)
		}
	}
	rows := strings.Count(table, "<tr>") - 1 // the head's
	if rows != 2 || strings.Count(table, "https://crm.a.example/hook") != 2 || strings.Count(table, "<td>pending</td>") != 2 ||
		!strings.Contains(table, "call.ringing") || !strings.Contains(table, "call.completed") || strings.Contains(table, theirs.ID) {
		t.Errorf("%d rows, want the caller's call.ringing and call.completed, each pending to the endpoint:\n%s", rows, table)
	}

	// Erased, the caller's messages go with the calls, and the page says how many.
	a = c.post("/c/a/privacy/erase", url.Values{"number": {"0612345678"}, "confirm": {"on"}})
	if a.status != 200 || !strings.Contains(a.body, "1 calls, 0 recordings and 2 webhook messages") {
		t.Fatalf("erase: %d %s", a.status, a.body)
	}
	if left, err := e.db.WebhookMessagesOf(ctx, "a", []string{mine.ID, theirs.ID}); err != nil || len(left) != 2 || left[0].Subject != theirs.ID {
		t.Errorf("after the erasure: %+v, %v", left, err)
	}
	if a := c.post("/c/a/privacy/lookup", url.Values{"number": {"0612345678"}}); a.status != 200 || strings.Contains(a.body, "caller-webhooks") {
		t.Errorf("lookup after the erasure: %d", a.status)
	}
}
