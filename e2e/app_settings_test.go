package e2e

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/recordings"
)

// logIn logs the browser in to the web app as the e2e admin and waits for the page asked for.
func logIn(t *testing.T, b *browser, app, path string) {
	t.Helper()
	goTo(t, b, app+path)
	b.run(t, chromedp.SendKeys("#email", webAdmin), chromedp.SendKeys("#password", webPassword), chromedp.Submit("#password"),
		chromedp.WaitVisible("header nav"))
	if at := eval[string](t, b, "location.pathname"); at != path {
		t.Fatalf("logged in at %s, want %s", at, path)
	}
}

// recordedCall places a sipp call with audio from caller (the default caller when "") and
// returns its completed record.
func recordedCall(t *testing.T, s *server, caller string, audio []byte) callRecord {
	t.Helper()
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP, caller: caller,
		pauseMS: 2000, media: true, files: map[string][]byte{"caller.pcap": pcapOf(audio, 0xCA11E4)}})
	trunk.expectSuccess()
	return finalCall(t, s, flyerNumber)
}

// uploadWAV is a 16 kHz mono 16-bit WAV of samples.
func uploadWAV(samples []int16) []byte {
	b := make([]byte, 44+2*len(samples))
	le := binary.LittleEndian
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(36+2*len(samples)))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1)
	le.PutUint16(b[22:], 1)
	le.PutUint32(b[24:], 16000)
	le.PutUint32(b[28:], 32000)
	le.PutUint16(b[32:], 2)
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*len(samples)))
	for i, s := range samples {
		le.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}

// earlyMedia places a call from a raw SIP client whose RTP socket it owns, collects the
// audio the switch sends it for d (the disclaimer plays as early media while the line
// rings), then cancels the call. It returns the decoded audio.
func earlyMedia(t *testing.T, s *server, d time.Duration) []float64 {
	t.Helper()
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	sig := newUDPPeer(t, "127.0.0.1", s.SIP)
	port := rtpConn.LocalAddr().(*net.UDPAddr).Port
	sdp := fmt.Sprintf("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port)
	ruri := "sip:" + flyerNumber + "@" + s.SIP
	id := fmt.Sprintf("disclaimer-%d", time.Now().UnixNano())
	sig.send(t, []byte(sipRequest("INVITE", ruri, sig.local(), id, "Content-Type: application/sdp\r\n", sdp)))
	var audio []float64
	buf := make([]byte, 1500)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		rtpConn.SetReadDeadline(deadline)
		n, err := rtpConn.Read(buf)
		if err != nil {
			break
		}
		if n > 12 && buf[1]&0x7f == 0 {
			audio = append(audio, decodeULaw(buf[12:n])...)
		}
	}
	sig.send(t, []byte(sipRequest("CANCEL", ruri, sig.local(), id, "", "")))
	return audio
}

// TestWebAppSettingsAndPrivacy: erase a caller from the Privacy page (the call and its
// recording are gone and the number is nowhere on disk); turn recording off in Settings
// (the next call is not recorded); upload a disclaimer (the next call hears it, as early
// media, against the prompt as converted).
func TestWebAppSettingsAndPrivacy(t *testing.T) {
	audio := g711.Encode(nil, testSignal(3*8000, 7), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, calls: 2,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true, webUsers: true})
	b := newBrowser(t, chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	app := "http://" + s.App

	// A recorded call from the data subject; then erase them from the Privacy page.
	subject := recordedCall(t, s, subjectNumber, audio)
	if subject.RecordingID == "" {
		t.Fatalf("the subject's call was not recorded: %+v", subject)
	}
	if traces := numberTraces(t, s.dataDir, "", subjectNumber); len(traces) == 0 {
		t.Fatal("the number is nowhere on disk before erasure: the search proves nothing")
	}
	logIn(t, b, app, "/c/"+customerID+"/privacy")
	b.run(t, chromedp.SendKeys("#number", "06 8787 8721"), chromedp.Submit("#number"), chromedp.WaitVisible("#found-h"))
	if n := eval[int](t, b, "document.querySelectorAll('#caller-calls tbody tr').length"); n != 1 {
		t.Fatalf("the caller's calls: %d rows, want 1", n)
	}
	// Without the confirmation (or without the CSRF token) nothing is erased.
	for name, js := range map[string]string{
		"no confirmation": `fetch(document.getElementById('erase').action, {method: 'POST', body: new FormData(document.getElementById('erase'))}).then(r => r.status)`,
		"no CSRF token": `(function(){var f = new FormData(document.getElementById('erase')); f.delete('csrf'); f.set('confirm', 'on');
			return fetch(document.getElementById('erase').action, {method: 'POST', body: f}).then(r => r.status);})()`,
	} {
		if st := eval[int](t, b, js); st != 400 && st != 403 {
			t.Errorf("erase with %s: %d", name, st)
		}
	}
	if got := s.callByID(t, subject.ID); got.ID != subject.ID {
		t.Fatal("the call went without the confirmation")
	}
	goTo(t, b, app+"/c/"+customerID+"/privacy")
	b.run(t, chromedp.SendKeys("#number", "+31687878721"), chromedp.Submit("#number"), chromedp.WaitVisible("#erase"),
		chromedp.Click("#confirm"), chromedp.Click("#erase button"), chromedp.WaitVisible("#erased"))
	if code, _, _ := s.getRecording(t, subject.RecordingID, nil); code != 404 {
		t.Errorf("the erased recording answers %d", code)
	}
	if traces := numberTraces(t, s.dataDir, "", subjectNumber); len(traces) > 0 {
		t.Errorf("the number is still on disk after erasure: %v", traces)
	}

	// Recording off: the next call is not recorded.
	goTo(t, b, app+"/c/"+customerID+"/settings")
	b.run(t, chromedp.Click("#record"), chromedp.Submit("#record"), chromedp.WaitVisible(".ok"))
	if on := eval[bool](t, b, "document.getElementById('record').checked"); on {
		t.Fatal("recording still on after saving it off")
	}
	if c := recordedCall(t, s, "", audio); c.RecordingID != "" || c.Media != nil {
		t.Errorf("a call after recording was turned off was recorded or anchored: %+v", c)
	}
	line.expectSuccess()

	// A disclaimer uploaded as 16 kHz audio: the next call hears it converted.
	raw := testSignal(24000, 11) // 1.5 s at 16 kHz
	upload := uploadWAV(raw)
	file := filepath.Join(t.TempDir(), "disclaimer.wav")
	if err := os.WriteFile(file, upload, 0o600); err != nil {
		t.Fatal(err)
	}
	ringer := startSipp(t, "ringer", sippSpec{scenario: "uas-media.xml", media: true, pauseMS: 20000,
		files: map[string][]byte{"callee.pcap": pcapOf(audio, 0xCA11EE)}})
	goTo(t, b, app+"/c/"+customerID+"/settings")
	eval[bool](t, b, fmt.Sprintf("document.getElementById('business_lines').value = %q; true", businessLine("+31852087972", ringer.port)))
	b.run(t, chromedp.Submit("#business_lines"), chromedp.WaitVisible(".ok"))
	b.run(t, chromedp.SetUploadFiles("#disclaimer-file", []string{file}), chromedp.Submit("#disclaimer-file"), chromedp.WaitVisible("#disclaimer-player"))
	if !b.waitFor(t, `(function(){var p=document.getElementById('disclaimer-player'); if(p.paused) p.play(); return p.currentTime > 0.3;})()`, 10*time.Second) {
		t.Error("the uploaded disclaimer does not play in the page")
	}
	converted, err := recordings.ConvertPrompt(upload)
	if err != nil {
		t.Fatal(err)
	}
	want, err := recordings.ParsePrompt(converted)
	if err != nil {
		t.Fatal(err)
	}
	ref := make([]float64, len(want))
	for i, v := range want {
		ref[i] = float64(v) / 32768
	}
	heard := earlyMedia(t, s, 2500*time.Millisecond)
	if len(heard) < len(ref) {
		t.Fatalf("heard %d samples of early media, want at least the prompt's %d", len(heard), len(ref))
	}
	if c, lag := bestCorrelation(heard, ref); c < 0.9 || math.IsNaN(c) {
		t.Errorf("the caller's early media vs the uploaded disclaimer: correlation %.3f at %d", c, lag)
	}
	if !strings.Contains(eval[string](t, b, "document.querySelector('main').innerText"), "Disclaimer") {
		t.Error("the settings page lacks the prompts section")
	}
	b.checkConsole(t)
}
