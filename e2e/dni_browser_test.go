package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// shopPage is the customer's page. It shows the display number +31852087972
// in the formats of docs/api.md, plus numbers that must not change. {{SRC}}
// is the script's src.
const shopPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>
window.pageErrors = [];
window.addEventListener('error', function (e) { window.pageErrors.push(String(e.message)); });
window.addEventListener('unhandledrejection', function (e) { window.pageErrors.push('unhandled rejection: ' + e.reason); });
// The test switches the page's visibility through window.pageVisibility.
window.pageVisibility = location.search.indexOf('hidden') >= 0 ? 'hidden' : 'visible';
Object.defineProperty(document, 'visibilityState', { configurable: true, get: function () { return window.pageVisibility; } });
</script>
</head><body>
<p>Bel <span id="e164">+31852087972</span> nu</p>
<p id="nat">0852087972</p>
<p id="spaced">085 208 79 72</p>
<p id="dash">085-2087972</p>
<p id="paren">(085) 208 79 72</p>
<p id="intl">+31 85 208 7972</p>
<p id="intl0">+31 (0)85 208 7972</p>
<p id="intl00">0031852087972</p>
<p id="twice">Bel 085 208 79 72 of +31852087972.</p>
<p><a id="tel" href="tel:+31852087972">085 208 79 72</a></p>
<p><a id="telnat" href="tel:0852087972">bel ons</a></p>
<p id="distractor">Order 1085208797299</p>
<p id="glued">ref0852087972</p>
<p id="other">Fax 020 123 4567</p>
<textarea id="ta">0852087972</textarea>
<div id="late"></div>
<script>
setTimeout(function () {
  var p = document.createElement('p');
  p.id = 'late-p';
  p.textContent = 'Later: 085 208 79 72';
  document.getElementById('late').appendChild(p);
  window.pageLate = true;
}, 300);
window.pageOK = true;
</script>
<script src="{{SRC}}" data-site-key="` + siteKey + `" async></script>
</body></html>
`

// snapshotJS reads what the test checks on the page.
const snapshotJS = `(function () {
  var out = {};
  ['e164','nat','spaced','dash','paren','intl','intl0','intl00','twice','tel','telnat',
   'distractor','glued','other','late-p'].forEach(function (id) {
    var el = document.getElementById(id);
    out[id] = el ? el.textContent : '<missing>';
  });
  out['tel.href'] = document.getElementById('tel').getAttribute('href');
  out['telnat.href'] = document.getElementById('telnat').getAttribute('href');
  out['ta'] = document.getElementById('ta').value;
  out['pageOK'] = String(window.pageOK === true);
  out['pageLate'] = String(window.pageLate === true);
  out['pageErrors'] = window.pageErrors.join('; ');
  return out;
})()`

// fill replaces the digits of template, in order, by digits.
func fill(template, digits string) string {
	var b strings.Builder
	i := 0
	for _, r := range template {
		if r >= '0' && r <= '9' && i < len(digits) {
			b.WriteByte(digits[i])
			i++
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// wantPage is the page as it must look with number n (E.164, +31, 9 digits
// after the country code like the display number).
func wantPage(t *testing.T, n string) map[string]string {
	t.Helper()
	nsn, ok := strings.CutPrefix(n, "+31")
	if !ok || len(nsn) != 9 {
		t.Fatalf("number %q is not a Dutch number of the display number's length", n)
	}
	e164 := "31" + nsn   // +31 85 ...
	e164z := "310" + nsn // +31 (0)85 ...
	intl := "0031" + nsn // 0031 85 ...
	nat := "0" + nsn     // 085 ...
	return map[string]string{
		"e164":        fill("+31852087972", e164),
		"nat":         fill("0852087972", nat),
		"spaced":      fill("085 208 79 72", nat),
		"dash":        fill("085-2087972", nat),
		"paren":       fill("(085) 208 79 72", nat),
		"intl":        fill("+31 85 208 7972", e164),
		"intl0":       fill("+31 (0)85 208 7972", e164z),
		"intl00":      fill("0031852087972", intl),
		"twice":       "Bel " + fill("085 208 79 72", nat) + " of " + fill("+31852087972", e164) + ".",
		"tel":         fill("085 208 79 72", nat),
		"tel.href":    "tel:" + fill("+31852087972", e164),
		"telnat":      "bel ons",
		"telnat.href": "tel:" + fill("0852087972", nat),
		"late-p":      "Later: " + fill("085 208 79 72", nat),
		"distractor":  "Order 1085208797299",
		"glued":       "ref0852087972",
		"other":       "Fax 020 123 4567",
		"ta":          "0852087972",
		"pageOK":      "true",
		"pageLate":    "true",
		"pageErrors":  "",
	}
}

// originalPage is the page as it must look when the script changed nothing.
func originalPage(t *testing.T) map[string]string {
	t.Helper()
	return wantPage(t, displayNumber)
}

// pageServer serves the customer's page on 127.0.0.1:0, and fake APIs under
// /fake/{mode}/ whose script is the binary's own.
type pageServer struct {
	srv *httptest.Server

	mu      sync.Mutex
	apiBase string // origin of the trackline binary the page loads the script from
	script  []byte // the binary's /v1/script.js, for the fake APIs

	fakeHits    atomic.Int64 // requests to a fake API
	fakeTouches atomic.Int64 // touches of the "swap" fake API
}

func newPageServer(t *testing.T) *pageServer {
	t.Helper()
	p := &pageServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /shop.html", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		src := p.apiBase + "/v1/script.js"
		p.mu.Unlock()
		p.writePage(w, src)
	})
	mux.HandleFunc("GET /fake/{mode}/shop.html", func(w http.ResponseWriter, r *http.Request) {
		p.writePage(w, "/fake/"+r.PathValue("mode")+"/v1/script.js")
	})
	mux.HandleFunc("GET /fake/{mode}/v1/script.js", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		b := p.script
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /fake/{mode}/v1/{path...}", p.fakeAPI)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pageServer) origin() string { return p.srv.URL }

func (p *pageServer) writePage(w http.ResponseWriter, src string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, strings.ReplaceAll(shopPage, "{{SRC}}", src))
}

// useAPI points the page at a trackline binary and keeps a copy of its script
// for the fake APIs.
func (p *pageServer) useAPI(t *testing.T, s *server) {
	t.Helper()
	resp, err := do(context.Background(), httpClient, http.MethodGet, "http://"+s.HTTP+"/v1/script.js", "", nil, nil)
	if err != nil {
		t.Fatalf("GET /v1/script.js: %v", err)
	}
	if resp.Status != http.StatusOK || len(resp.Body) == 0 {
		t.Fatalf("GET /v1/script.js: status %d, %d bytes", resp.Status, len(resp.Body))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.apiBase = "http://" + s.HTTP
	p.script = resp.Body
}

// fakeAPI answers the script like a broken or scripted trackline, by mode:
// "error" 500 problem, "drop" closes the connection, "garbage" 200 not JSON,
// "shape" 200 JSON of the wrong shape, "swap" a working API whose touches
// answer a new number, every second ("swap3": every 3 seconds).
func (p *pageServer) fakeAPI(w http.ResponseWriter, r *http.Request) {
	p.fakeHits.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	switch r.PathValue("mode") {
	case "error":
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"type":"about:blank","title":"Internal Server Error","status":500}`)
	case "drop":
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
	case "garbage":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `<html>not json`)
	case "shape":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"session_id":42,"number":["+31850000009"],"replace":"+31852087972"}`)
	case "swap", "swap3":
		interval := 1
		if r.PathValue("mode") == "swap3" {
			interval = 3
		}
		number := "+31850000041"
		status := http.StatusCreated
		if strings.HasSuffix(r.URL.Path, "/touch") {
			p.fakeTouches.Add(1)
			number = "+31850000042"
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"session_id": "fake-session", "number": number, "formatted_number": "085 000 00" + number[len(number)-2:],
			"expires_at": time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339),
			"channel":    "Direct", "replace": []string{displayNumber}, "touch_interval": interval,
		})
	default:
		http.NotFound(w, r)
	}
}

// browser is a headless Chromium with a fresh profile and the console of its
// tab.
type browser struct {
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newBrowser starts Debian's Chromium, with extra flags if given. It fails the test when it is missing.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): run `make deps`, which installs Debian's chromium", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	var proc *os.Process
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil {
		proc = c.Browser.Process()
	}
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		acancel()
		<-done
		if proc != nil {
			_ = proc.Kill() // by PID; an error only says it has exited already
		}
	})
	return b
}

// run runs the actions with a timeout.
func (b *browser) run(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// snapshot reads the page's state.
func (b *browser) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](snapshotJS))
	if err != nil {
		t.Fatalf("read page: %v", err)
	}
	return m
}

// waitFor polls a JavaScript expression until it is true; false on timeout.
func (b *browser) waitFor(t *testing.T, expr string, timeout time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		if errors.Is(err, chromedp.ErrPollingTimeout) {
			return false
		}
		t.Fatalf("poll %s: %v", expr, err)
	}
	return true
}

// waitSwapped waits until the script swapped the number, including the node
// the page adds after 300 ms.
func (b *browser) waitSwapped(t *testing.T) {
	t.Helper()
	if !b.waitFor(t, `document.getElementById('nat').textContent !== '0852087972'`, 15*time.Second) {
		t.Fatalf("the script did not swap the number within 15s; page: %v", b.snapshot(t))
	}
	if !b.waitFor(t, `(function(){var l=document.getElementById('late-p');return !!l && l.textContent.indexOf('208 79 72') < 0;})()`, 5*time.Second) {
		t.Errorf("the node added after load was not swapped; page: %v", b.snapshot(t))
	}
}

// cookies returns the browser's cookies for u by name.
func (b *browser) cookies(t *testing.T, u string) map[string]*network.Cookie {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		t.Fatalf("get cookies: %v", err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

func (b *browser) clearCookies(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("clear cookies: %v", err)
	}
}

// checkConsole fails the test on an uncaught exception or a console API call
// (the page itself writes none); network errors of the browser are allowed.
func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.IsException() || m.Source == "" {
			t.Errorf("console: %s (%s:%d)", m, m.URL, m.Line)
		}
	}
	b.console = nil
}

// comparePage checks every key of want against the page.
func comparePage(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g := got[k]; g != w {
			t.Errorf("%s = %q, want %q", k, g, w)
		}
	}
}

// numberOf reads the session's number through the public API with the
// session id from the tl_sid cookie; the session must still exist (200).
func numberOf(t *testing.T, s *server, origin, sessionID string) string {
	t.Helper()
	resp := s.postSession(t, origin, map[string]string{
		"site_key": siteKey, "session_id": sessionID, "landing_url": origin + "/shop.html",
	})
	if resp.Status != http.StatusOK {
		t.Fatalf("POST /v1/sessions with session %s: status %d, want 200: %s", sessionID, resp.Status, resp.Body)
	}
	a := decodeSession(t, resp)
	if a.SessionID != sessionID {
		t.Fatalf("POST /v1/sessions with session %s answered session %s", sessionID, a.SessionID)
	}
	return a.Number
}

// TestDNIBrowser loads a customer's page with the DNI script in Chromium and
// checks the swap, the cookies, a reload, a number change on touch and the
// page's behaviour when the API fails.
func TestDNIBrowser(t *testing.T) {
	pages := newPageServer(t)
	s := startServer(t, testConfig{origins: []string{pages.origin()}})
	pages.useAPI(t, s)
	b := newBrowser(t)
	shop := pages.origin() + "/shop.html"

	var sessionID, number string
	t.Run("swaps every format", func(t *testing.T) {
		b.run(t, chromedp.Navigate(shop))
		b.waitSwapped(t)
		c := b.cookies(t, shop)["tl_sid"]
		if c == nil {
			t.Fatalf("no tl_sid cookie after the swap")
		}
		sessionID = c.Value
		number = numberOf(t, s, pages.origin(), sessionID)
		comparePage(t, b.snapshot(t), wantPage(t, number))
		b.checkConsole(t)
	})
	if sessionID == "" {
		t.FailNow()
	}

	t.Run("cookies", func(t *testing.T) {
		cookies := b.cookies(t, shop)
		sid := cookies["tl_sid"]
		if sid == nil {
			t.Fatalf("no tl_sid cookie")
		}
		if sid.SameSite != network.CookieSameSiteLax {
			t.Errorf("tl_sid SameSite = %q, want Lax", sid.SameSite)
		}
		if sid.Path != "/" {
			t.Errorf("tl_sid Path = %q, want /", sid.Path)
		}
		if sid.Secure {
			t.Errorf("tl_sid is Secure on an http page")
		}
		if sid.Session {
			t.Errorf("tl_sid is a session cookie, want Max-Age of the lease")
		}
		// Max-Age is the time to expires_at: the 30m lease.
		left := time.Until(time.Unix(int64(sid.Expires), 0))
		if left < 25*time.Minute || left > 31*time.Minute {
			t.Errorf("tl_sid expires in %v, want about the 30m lease", left)
		}
		if ch := cookies["tl_ch"]; ch != nil {
			t.Errorf("tl_ch set on a direct visit without campaign parameters: %q", ch.Value)
		}
	})

	t.Run("reload keeps the number", func(t *testing.T) {
		b.run(t, chromedp.Reload())
		b.waitSwapped(t)
		comparePage(t, b.snapshot(t), wantPage(t, number))
		if c := b.cookies(t, shop)["tl_sid"]; c == nil || c.Value != sessionID {
			t.Errorf("tl_sid after reload = %v, want %s", c, sessionID)
		}
		b.checkConsole(t)
	})

	t.Run("touch swaps to a new number", func(t *testing.T) {
		b.clearCookies(t)
		b.run(t, chromedp.Navigate(pages.origin()+"/fake/swap/shop.html"))
		if !b.waitFor(t, `document.getElementById('nat').textContent === '0850000042'`, 10*time.Second) {
			t.Fatalf("page did not move to the touched number; touches %d; page %v", pages.fakeTouches.Load(), b.snapshot(t))
		}
		b.waitFor(t, `document.getElementById('late-p') !== null`, 5*time.Second)
		comparePage(t, b.snapshot(t), wantPage(t, "+31850000042"))
		b.checkConsole(t)
	})

	t.Run("no touch while hidden, one when visible again", func(t *testing.T) {
		b.clearCookies(t)
		touches := pages.fakeTouches.Load()
		// Touch interval 3s: hidden for more than one interval, so the touch
		// is overdue when the page becomes visible, and the next timer tick
		// is still more than 2s away.
		b.run(t, chromedp.Navigate(pages.origin()+"/fake/swap3/shop.html?hidden"))
		if !b.waitFor(t, `document.getElementById('nat').textContent === '0850000041'`, 10*time.Second) {
			t.Fatalf("the hidden page did not get its number; page %v", b.snapshot(t))
		}
		time.Sleep(3500 * time.Millisecond)
		if n := pages.fakeTouches.Load() - touches; n != 0 {
			t.Errorf("%d touches while the page was hidden, want 0", n)
		}
		b.run(t, chromedp.Evaluate[chromedp.Void](`window.pageVisibility = 'visible'; document.dispatchEvent(new Event('visibilitychange'))`))
		if !b.waitFor(t, `document.getElementById('nat').textContent === '0850000042'`, 1500*time.Millisecond) {
			t.Errorf("no touch within 1.5s of becoming visible (touches %d)", pages.fakeTouches.Load()-touches)
		}
		b.checkConsole(t)
	})

	t.Run("API failure leaves the page alone", func(t *testing.T) {
		for _, mode := range []string{"error", "drop", "garbage", "shape"} {
			t.Run(mode, func(t *testing.T) {
				b.clearCookies(t)
				hits := pages.fakeHits.Load()
				b.run(t, chromedp.Navigate(pages.origin()+"/fake/"+mode+"/shop.html"))
				if !b.waitFor(t, `window.pageLate === true`, 5*time.Second) {
					t.Fatalf("the page's own script did not run")
				}
				deadline := time.Now().Add(5 * time.Second)
				for pages.fakeHits.Load() == hits && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if pages.fakeHits.Load() == hits {
					t.Fatalf("the script never called the API")
				}
				time.Sleep(500 * time.Millisecond) // let the script handle the answer
				comparePage(t, b.snapshot(t), originalPage(t))
				if c := b.cookies(t, pages.origin())["tl_sid"]; c != nil {
					t.Errorf("tl_sid set although the API failed: %q", c.Value)
				}
				b.checkConsole(t)
			})
		}

		t.Run("binary stopped", func(t *testing.T) {
			s.Stop()
			b.run(t, chromedp.Navigate(shop))
			if !b.waitFor(t, `window.pageLate === true`, 5*time.Second) {
				t.Fatalf("the page's own script did not run")
			}
			time.Sleep(500 * time.Millisecond)
			comparePage(t, b.snapshot(t), originalPage(t))
			b.checkConsole(t)
		})
	})
}

// TestDNICampaignClassified visits the page with campaign parameters and
// checks the channel the binary gave the session, and that a later direct
// visit inherits the campaign from the tl_ch cookie.
func TestDNICampaignClassified(t *testing.T) {
	pages := newPageServer(t)
	s := startServer(t, testConfig{origins: []string{pages.origin()}})
	pages.useAPI(t, s)
	b := newBrowser(t)
	shop := pages.origin() + "/shop.html"

	// visit loads the page with the query, waits for the swap and returns
	// the admin view of the session in tl_sid.
	visit := func(t *testing.T, query string) map[string]any {
		t.Helper()
		b.run(t, chromedp.Navigate(shop+query))
		b.waitSwapped(t)
		c := b.cookies(t, shop)["tl_sid"]
		if c == nil {
			t.Fatalf("no tl_sid cookie")
		}
		b.checkConsole(t)
		return s.sessionByID(t, c.Value)
	}
	checkField := func(t *testing.T, sess map[string]any, key, want string) {
		t.Helper()
		if got, ok := sess[key]; ok && got != want {
			t.Errorf("session %s = %v, want %q", key, got, want)
		}
	}

	tests := []struct {
		name, query, channel string
		campaign             map[string]string
	}{
		{"newsletter with gclid", "?utm_source=newsletter&gclid=abc", "Newsletter",
			map[string]string{"utm_source": "newsletter", "gclid": "abc"}},
		{"gclid only", "?gclid=abc", "Paid search", map[string]string{"gclid": "abc"}},
		{"cpc medium", "?utm_source=bing&utm_medium=cpc&utm_campaign=spring", "Paid search",
			map[string]string{"utm_source": "bing", "utm_medium": "cpc", "utm_campaign": "spring"}},
		{"direct", "", "Direct", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b.clearCookies(t)
			sess := visit(t, tc.query)
			if got := sess["channel"]; got != tc.channel {
				t.Errorf("channel = %v, want %q; session %v", got, tc.channel, sess)
			}
			for k, v := range tc.campaign {
				checkField(t, sess, k, v)
			}
			ch := b.cookies(t, shop)["tl_ch"]
			if tc.campaign == nil {
				if ch != nil {
					t.Errorf("tl_ch = %q on a direct visit", ch.Value)
				}
				return
			}
			if ch == nil {
				t.Fatalf("no tl_ch cookie after a visit with %s", tc.query)
			}
			if ch.SameSite != network.CookieSameSiteLax {
				t.Errorf("tl_ch SameSite = %q, want Lax", ch.SameSite)
			}
			if left := time.Until(time.Unix(int64(ch.Expires), 0)); left < 29*24*time.Hour || left > 31*24*time.Hour {
				t.Errorf("tl_ch expires in %v, want 30 days", left)
			}
			raw, err := url.QueryUnescape(ch.Value)
			if err != nil {
				t.Fatalf("tl_ch %q: %v", ch.Value, err)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatalf("tl_ch %q is not JSON: %v", raw, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.campaign) {
				t.Errorf("tl_ch = %v, want %v", got, tc.campaign)
			}
		})
	}

	t.Run("direct return visit inherits the campaign", func(t *testing.T) {
		b.clearCookies(t)
		first := visit(t, "?utm_source=newsletter&gclid=abc")
		// A new session later: the lease cookie is gone, tl_ch stays.
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "tl_sid", URL: shop}); err != nil {
			t.Fatalf("delete tl_sid: %v", err)
		}
		second := visit(t, "")
		if sessionIDOf(second) == sessionIDOf(first) {
			t.Fatalf("the second visit reused session %s", sessionIDOf(first))
		}
		if got := second["channel"]; got != "Newsletter" {
			t.Errorf("channel of the return visit = %v, want Newsletter (from tl_ch); session %v", got, second)
		}
		checkField(t, second, "utm_source", "newsletter")
		checkField(t, second, "gclid", "abc")
	})
}
