package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/trackline/trackline/g711"
)

// The web app's logins in the e2e config (testConfig.webUsers).
const (
	webAdmin    = "admin@e2e.example"
	webPassword = "e2e-web-password"
)

// axeSource is axe-core, fetched by make assets for the tests (scripts/assets.sh).
func axeSource(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "app", "assets", "testdata", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is missing (%v): run `make assets`", err)
	}
	return string(b)
}

// eval runs JavaScript in the page and returns its value.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.60s: %v", js, err)
	}
	return v
}

// checkAxe runs axe-core on the page and fails on a serious or critical violation, or on
// a Content-Security-Policy violation the page saw.
func checkAxe(t *testing.T, b *browser, axe, page string) {
	t.Helper()
	for _, v := range eval[[]string](t, b, "window.__csp || []") {
		t.Errorf("%s: Content-Security-Policy violation: %s", page, v)
	}
	eval[bool](t, b, axe+";true")
	got := eval[[]string](t, b, `axe.run(document, {resultTypes: ["violations"]}).then(function (r) {
		return r.violations.filter(function (v) { return v.impact === "serious" || v.impact === "critical"; })
			.map(function (v) { return v.id + ": " + v.help + " (" + v.nodes.map(function (n) { return n.target.join(" "); }).join(", ") + ")"; });
	})`)
	for _, v := range got {
		t.Errorf("%s: axe: %s", page, v)
	}
}

// goTo loads a page of the web app and waits for it.
func goTo(t *testing.T, b *browser, u string) {
	t.Helper()
	b.run(t, chromedp.Navigate(u), chromedp.WaitReady("main"))
}

// TestWebApp: log in, see a call that sipp places appear live, open it, read its
// attribution, play its recording, tag it, filter the calls; every page passes axe-core
// and keeps the Content-Security-Policy (no violation in the console).
func TestWebApp(t *testing.T) {
	callerAudio := g711.Encode(nil, testSignal(4*8000, 5), g711.ULaw)
	calleeAudio := g711.Encode(nil, testSignal(4*8000, 6), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, pauseMS: 500,
		files: map[string][]byte{"callee.pcap": pcapOf(calleeAudio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true, webUsers: true})
	axe := axeSource(t)
	b := newBrowser(t, chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	app := "http://" + s.App
	// Every page counts the Content-Security-Policy violations it sees (none allowed).
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`,
	}); err != nil {
		t.Fatal(err)
	}
	cancel()

	// A wrong password, then the right one.
	goTo(t, b, app+"/c/"+customerID+"/calls")
	checkAxe(t, b, axe, "login")
	b.run(t, chromedp.SendKeys("#email", webAdmin), chromedp.SendKeys("#password", "not the password"), chromedp.Submit("#password"),
		chromedp.WaitVisible(".error"))
	eval[bool](t, b, "document.getElementById('password').value = ''; true")
	// Keyboard only: the first Tab reaches the skip link, Enter in the form logs in.
	eval[bool](t, b, "document.activeElement && document.activeElement.blur(); true")
	b.run(t, chromedp.KeyEvent("\t"))
	if cls := eval[string](t, b, "document.activeElement.className"); cls != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", cls)
	}
	b.run(t, chromedp.SendKeys("#password", webPassword+"\r"), chromedp.WaitVisible("#live"))
	if loc := eval[string](t, b, "location.pathname"); loc != "/c/"+customerID+"/calls" {
		t.Fatalf("after login at %s, want the page asked for", loc)
	}
	checkAxe(t, b, axe, "calls")

	// A call: it shows live while it rings and talks, then among the latest calls.
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP,
		pauseMS: 3000, media: true, files: map[string][]byte{"caller.pcap": pcapOf(callerAudio, 0xCA11E4)}})
	if !b.waitFor(t, `!!document.querySelector('#live .live-call')`, 15*time.Second) {
		t.Fatalf("the call did not appear live; live: %s", eval[string](t, b, "document.getElementById('live').innerText"))
	}
	trunk.expectSuccess()
	line.expectSuccess()
	call := finalCall(t, s, flyerNumber)
	if !b.waitFor(t, `!document.querySelector('#live .live-call') && !!document.querySelector('#live .recent-list a')`, 10*time.Second) {
		t.Fatalf("the ended call did not move to the latest calls; live: %s", eval[string](t, b, "document.getElementById('live').innerText"))
	}

	// Its page: attribution in words, the recording plays and seeks.
	b.run(t, chromedp.Click(`#live .recent-list a`), chromedp.WaitVisible("#attr-h"))
	text := eval[string](t, b, "document.querySelector('main').innerText")
	for _, want := range []string{"Flyer", "static number", flyerNumber} {
		if !strings.Contains(text, want) {
			t.Errorf("the call page lacks %q:\n%s", want, text)
		}
	}
	checkAxe(t, b, axe, "call")
	if !b.waitFor(t, `(function(){var p=document.getElementById('player'); if(!p) return false; if(p.paused) p.play(); return p.currentTime > 0.5;})()`, 15*time.Second) {
		t.Fatalf("the recording did not play: %v", eval[string](t, b, "String(document.getElementById('player') && document.getElementById('player').error && document.getElementById('player').error.message)"))
	}
	if !b.waitFor(t, `(function(){var p=document.getElementById('player'); p.currentTime = 2; return p.currentTime >= 1.9;})()`, 5*time.Second) {
		t.Error("the recording did not seek")
	}

	// Tag it.
	eval[bool](t, b, "document.getElementById('lead_status').value = 'qualified'; true")
	b.run(t, chromedp.SendKeys("#tags", "hot, web-app"),
		chromedp.SendKeys("#value", "125.50"), chromedp.Submit("#tags"), chromedp.WaitVisible(".ok"))
	got := s.callByID(t, call.ID)
	if strings.Join(got.Tags, ",") != "hot,web-app" || got.LeadStatus != "qualified" || got.Value != 125.5 {
		t.Errorf("annotations in the record: tags %v, lead %q, value %v", got.Tags, got.LeadStatus, got.Value)
	}

	// Filter by channel and date: the call is there for Flyer today, not for Newsletter.
	today := time.Now().UTC().Format("2006-01-02")
	goTo(t, b, app+"/c/"+customerID+"/calls?channel=Flyer&from="+today+"&to="+today)
	if n := eval[int](t, b, "document.querySelectorAll('table.calls tbody tr').length"); n != 1 {
		t.Errorf("calls for Flyer today: %d rows, want 1", n)
	}
	goTo(t, b, app+"/c/"+customerID+"/calls?channel=Newsletter")
	if n := eval[int](t, b, "document.querySelectorAll('table.calls tbody tr').length"); n != 0 {
		t.Errorf("calls for Newsletter: %d rows, want 0", n)
	}
	goTo(t, b, app+"/c/"+customerID+"/calls?tag=hot")
	if n := eval[int](t, b, "document.querySelectorAll('table.calls tbody tr').length"); n != 1 {
		t.Errorf("calls tagged hot: %d rows, want 1", n)
	}

	// The overview counts it (from the rollups), with its chart.
	goTo(t, b, app+"/c/"+customerID+"/")
	if n := eval[string](t, b, "document.getElementById('total-calls').textContent"); n != "1" {
		t.Errorf("overview: %s calls, want 1", n)
	}
	if !b.waitFor(t, `!!document.querySelector('#chart .uplot')`, 5*time.Second) {
		t.Error("the overview's chart was not drawn")
	}
	checkAxe(t, b, axe, "overview")
	for _, p := range []string{"numbers", "settings", "users", "audit", "privacy", "webhooks", "google-ads"} {
		goTo(t, b, app+"/c/"+customerID+"/"+p)
		checkAxe(t, b, axe, p)
	}
	// Narrow screens: nothing wider than 360 px.
	b.run(t, chromedp.EmulateViewport(360, 740))
	for _, p := range []string{"", "calls", "calls/" + call.ID, "numbers", "settings", "users", "audit", "privacy", "webhooks", "google-ads"} {
		goTo(t, b, app+"/c/"+customerID+"/"+p)
		if w := eval[int](t, b, "document.documentElement.scrollWidth"); w > 360 {
			t.Errorf("/%s is %d px wide at 360 px: %s", p, w, eval[string](t, b, `Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > 362).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join('; ')`))
		}
	}
	b.checkConsole(t)
}
