package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/internal/rtpcap"
)

// The media tests put the real binary, anchoring and recording, between a sipp trunk and a
// sipp business line that play known G.711 audio from pcap files (sipp's play_pcap_audio).

// testSignal is n samples of audio that never repeats: a tone whose frequency jumps every
// 50 ms to a pseudo-random value, so the alignment of a recording with it is unique.
func testSignal(n int, seed uint32) []int16 {
	out := make([]int16, n)
	phase, freq := 0.0, 0.0
	for i := range out {
		if i%400 == 0 {
			seed = seed*1664525 + 1013904223
			freq = 300 + float64(seed>>8%2700)
		}
		phase += 2 * math.Pi * freq / 8000
		out[i] = int16(6000 * math.Sin(phase))
	}
	return out
}

// pcapOf packs µ-law audio into 20 ms RTP packets (PCMU) in a pcap file of Ethernet/IPv4/
// UDP frames, 20 ms apart, as sipp's play_pcap_audio reads them.
func pcapOf(ulaw []byte, ssrc uint32) []byte { return rtpcap.PCMU(ulaw, ssrc) }

// wavFile is a parsed stereo recording.
type wavFile struct {
	channels, rate, bits int
	left, right          []float64
}

func parseWAV(t *testing.T, data []byte) wavFile {
	t.Helper()
	if len(data) < 44 || string(data[:4]) != "RIFF" || string(data[8:16]) != "WAVEfmt " || string(data[36:40]) != "data" {
		t.Fatalf("not a canonical WAV: % x", data[:min(len(data), 44)])
	}
	le := binary.LittleEndian
	w := wavFile{channels: int(le.Uint16(data[22:])), rate: int(le.Uint32(data[24:])), bits: int(le.Uint16(data[34:]))}
	if riff := le.Uint32(data[4:]); int(riff) != len(data)-8 {
		t.Errorf("RIFF size %d, file %d bytes", riff, len(data))
	}
	n := int(le.Uint32(data[40:]))
	if n != len(data)-44 || n%4 != 0 {
		t.Fatalf("data size %d, file %d bytes", n, len(data))
	}
	for i := 44; i+4 <= len(data); i += 4 {
		w.left = append(w.left, float64(int16(le.Uint16(data[i:]))))
		w.right = append(w.right, float64(int16(le.Uint16(data[i+2:]))))
	}
	return w
}

// bestCorrelation finds where ref lies in x (template match on 0.25 s from ref's middle, so
// a recording that missed ref's first packets still aligns) and returns the normalised
// correlation of ref with x over their overlap there.
func bestCorrelation(x []float64, ref []float64) (float64, int) {
	mid := len(ref) / 2
	tpl := ref[mid : mid+2000]
	best, at := -1.0, 0
	for l := 0; l+len(tpl) <= len(x); l++ {
		if c := ncc(x[l:l+len(tpl)], tpl); c > best {
			best, at = c, l
		}
	}
	lag := at - mid // x[lag+i] is ref[i]
	from := max(0, -lag)
	to := min(len(ref), len(x)-lag)
	if to-from < len(ref)/2 {
		return 0, lag
	}
	return ncc(x[lag+from:lag+to], ref[from:to]), lag
}

func ncc(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// decodeULaw is what a recording holds of µ-law audio.
func decodeULaw(b []byte) []float64 {
	out := make([]float64, len(b))
	for i, v := range b {
		out[i] = float64(g711.ULawToLinear[v])
	}
	return out
}

// anchorPort is the RTP port the switch announced to the trunk (in its 183 or 200).
func anchorPort(t *testing.T, trunk *sippProc) int {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(trunk.dir, trunk.name+".msg"))
	for _, m := range regexp.MustCompile(`m=audio (\d+) `).FindAllStringSubmatch(string(data), -1) {
		if p, _ := strconv.Atoi(m[1]); p != trunk.mediaPort {
			return p
		}
	}
	return 0
}

// waitAnswered waits until the trunk got the switch's 200 to its INVITE.
func waitAnswered(t *testing.T, trunk *sippProc, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, ok := trunk.firstMessage(false, "SIP/2.0 200"); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the call was not answered within %v", within)
}

func (s *server) getRecording(t *testing.T, id string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.Admin+"/v1/recordings/"+url.PathEscape(id), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// A call with the default disclaimer, recorded: the WAV's length is the talk time, its
// left channel is the caller's audio and its right channel the business line's. RTP sent
// into the call from another address is dropped and counted.
func TestRecordedCallEndToEnd(t *testing.T) {
	callerAudio := g711.Encode(nil, testSignal(3*8000, 1), g711.ULaw)
	calleeAudio := g711.Encode(nil, testSignal(3*8000, 2), g711.ULaw)
	// The line answers after the disclaimer (about 7 s): its audio is bridged from the start.
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true, pauseMS: 8000,
		files: map[string][]byte{"callee.pcap": pcapOf(calleeAudio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true, disclaimer: "default"})
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP,
		pauseMS: 4000, media: true, files: map[string][]byte{"caller.pcap": pcapOf(callerAudio, 0xCA11E4)}})

	// The disclaimer plays, then the ringback tone until the line answers.
	waitAnswered(t, trunk, 15*time.Second)
	time.Sleep(time.Second) // the caller's leg has latched onto its audio
	port := anchorPort(t, trunk)
	if port == 0 {
		t.Fatalf("no anchor port in the trunk's trace\n%s", trunk.diagnostics())
	}
	evil, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	const injected = 50
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	for i := range injected {
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		if _, err := evil.WriteToUDP(pkt, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: port}); err != nil {
			t.Fatal(err)
		}
	}

	trunk.expectSuccess()
	line.expectSuccess()
	call := finalCall(t, s, flyerNumber)
	if call.Disposition != "answered" || call.RecordingID == "" || call.Media == nil {
		t.Fatalf("call record: %+v", call)
	}
	if got := call.Media.StrictSourceDrops; got != injected {
		t.Errorf("strict-source drops %d, want %d", got, injected)
	}
	if got := call.Media.FromCaller.Packets; got != 150 {
		t.Errorf("packets from the caller %d, want the pcap's 150 (no injected one)", got)
	}
	if got := s.metric(t, `trackline_rtp_dropped_total{reason="strict_source"}`); got != injected {
		t.Errorf("strict_source metric %v, want %d", got, injected)
	}
	// Run as root, the switch forwards bridged calls in the kernel (media.kernel: auto), and
	// the figures above came through it: all but the first packets of each direction.
	if s.metric(t, "trackline_media_kernel_path") == 1 {
		deadline := time.Now().Add(3 * time.Second) // the loops publish once a second
		got := s.metric(t, "trackline_media_kernel_packets_total")
		for got < 250 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			got = s.metric(t, "trackline_media_kernel_packets_total")
		}
		if got < 250 {
			t.Errorf("the kernel path forwarded %v of the call's 300 packets, want all but a few", got)
		}
	} else {
		t.Log("the kernel path is not available here (not root?): the packet loops relayed the call")
	}

	code, hdr, data := s.getRecording(t, call.RecordingID, nil)
	if code != 200 || hdr.Get("Content-Type") != "audio/wav" {
		t.Fatalf("GET recording: %d %s", code, hdr.Get("Content-Type"))
	}
	w := parseWAV(t, data)
	if w.channels != 2 || w.rate != 8000 || w.bits != 16 {
		t.Fatalf("WAV %d channels %d Hz %d bits, want stereo 8 kHz PCM16", w.channels, w.rate, w.bits)
	}
	dur := float64(len(w.left)) / 8000
	if math.Abs(dur-call.TalkSeconds) > 0.2 {
		t.Errorf("recording %.3f s, talk time %.3f s: more than 0.2 s apart", dur, call.TalkSeconds)
	}
	if c, lag := bestCorrelation(w.left, decodeULaw(callerAudio)); c < 0.9 {
		t.Errorf("left channel vs the caller's audio: correlation %.3f at %d", c, lag)
	}
	if c, lag := bestCorrelation(w.right, decodeULaw(calleeAudio)); c < 0.9 {
		t.Errorf("right channel vs the business line's audio: correlation %.3f at %d", c, lag)
	}
	if c, _ := bestCorrelation(w.left, decodeULaw(calleeAudio)); c > 0.5 {
		t.Errorf("left channel carries the business line's audio: correlation %.3f", c)
	}

	// The ETag is the sha256 of the WAV served; on disk the recording is encrypted: no WAV
	// header, and no second of the served audio in the clear.
	if sum := sha256.Sum256(data); hdr.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Errorf("ETag %s is not the sha256 of the WAV served", hdr.Get("ETag"))
	}
	files, _ := filepath.Glob(filepath.Join(s.dataDir, "recordings", customerID, "*", "*", "*", call.ID+".wav.enc"))
	if len(files) != 1 {
		t.Fatalf("recording files of the call: %v", files)
	}
	onDisk, _ := os.ReadFile(files[0])
	if bytes.Contains(onDisk, []byte("RIFF")) || bytes.Contains(onDisk, data[44+8000:44+8000+64]) {
		t.Errorf("the recording is stored in the clear")
	}

	// Browsers seek with Range requests.
	code, hdr, part := s.getRecording(t, call.RecordingID, http.Header{"Range": {"bytes=0-43"}})
	if code != http.StatusPartialContent || len(part) != 44 || !bytes.Equal(part, data[:44]) {
		t.Errorf("Range request: %d, %d bytes, Content-Range %q", code, len(part), hdr.Get("Content-Range"))
	}
	// A range across chunk boundaries (32,000 bytes of audio each) decrypts the right bytes.
	code, _, part = s.getRecording(t, call.RecordingID, http.Header{"Range": {"bytes=31000-65000"}})
	if code != http.StatusPartialContent || !bytes.Equal(part, data[31000:65001]) {
		t.Errorf("Range request across chunks: %d, %d bytes", code, len(part))
	}
	if code, _, _ := s.getRecording(t, "01NOSUCHRECORDING000000000", nil); code != 404 {
		t.Errorf("unknown recording: %d, want 404", code)
	}
}

// SIGKILL in mid-call: after the restart the recording is a valid WAV linked to its call.
func TestRecordingSurvivesSIGKILL(t *testing.T) {
	callerAudio := g711.Encode(nil, testSignal(20*8000, 3), g711.ULaw)
	line := startSipp(t, "line", sippSpec{scenario: "uas-media.xml", media: true,
		files: map[string][]byte{"callee.pcap": pcapOf(callerAudio, 0xCA11EE)}})
	s := startServer(t, testConfig{businessLines: []string{businessLine("+31852087972", line.port)},
		flyerNumbers: []string{flyerNumber}, record: true})
	trunk := startSipp(t, "trunk", sippSpec{scenario: "uac-media.xml", service: flyerNumber, remote: s.SIP,
		pauseMS: 15000, media: true, files: map[string][]byte{"caller.pcap": pcapOf(callerAudio, 0xCA11E4)}})
	waitAnswered(t, trunk, 10*time.Second)
	// The recorder hands over each second once the call is two seconds past it: at 5 s,
	// about three seconds are on disk.
	time.Sleep(5 * time.Second)

	s.Kill()
	trunk.kill()
	line.kill()
	s.Restart()

	calls := s.calls(t, url.Values{"number": {flyerNumber}})
	if len(calls) != 1 {
		t.Fatalf("calls after restart: %+v", calls)
	}
	call := calls[0]
	if call.EndReason != "switch restarted" || call.RecordingID == "" {
		t.Fatalf("call after restart: %+v\n%s", call, s.Logs())
	}
	code, _, data := s.getRecording(t, call.RecordingID, nil)
	if code != 200 {
		t.Fatalf("GET recording after restart: %d", code)
	}
	w := parseWAV(t, data)
	if d := float64(len(w.left)) / 8000; d < 2 || d > 6 {
		t.Errorf("repaired recording is %.2f s long, want the 2-6 s written before the kill", d)
	}
	if c, _ := bestCorrelation(w.left, decodeULaw(callerAudio[:2*8000])); c < 0.9 {
		t.Errorf("repaired left channel vs the caller's audio: correlation %.3f", c)
	}
	parts, _ := filepath.Glob(filepath.Join(s.dataDir, "recordings", "*", "*", "*", "*", "*.part"))
	if len(parts) != 0 {
		t.Errorf(".part files left: %v", parts)
	}
}

// metric reads one sample from /metrics by its full name with labels.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(body, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(series+" ")); ok {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", series)
	return 0
}
