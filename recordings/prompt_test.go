package recordings

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// promptFmt is the fields of a fmt chunk.
type promptFmt struct {
	format, channels uint16
	rate             uint32
	bits             uint16
}

var goodFmt = promptFmt{format: 1, channels: 1, rate: 8000, bits: 16}

// fmtBody is a 16-byte fmt chunk body for f.
func fmtBody(f promptFmt) []byte {
	b := make([]byte, 16)
	le := binary.LittleEndian
	align := f.channels * f.bits / 8
	le.PutUint16(b[0:], f.format)
	le.PutUint16(b[2:], f.channels)
	le.PutUint32(b[4:], f.rate)
	le.PutUint32(b[8:], f.rate*uint32(align))
	le.PutUint16(b[12:], align)
	le.PutUint16(b[14:], f.bits)
	return b
}

// extensibleBody is a WAVE_FORMAT_EXTENSIBLE fmt body whose subformat is sub.
func extensibleBody(f promptFmt, sub uint16) []byte {
	f.format = 0xFFFE
	b := append(fmtBody(f), make([]byte, 24)...)
	le := binary.LittleEndian
	le.PutUint16(b[16:], 22)     // cbSize
	le.PutUint16(b[18:], f.bits) // valid bits
	le.PutUint32(b[20:], 4)      // channel mask: front centre
	le.PutUint16(b[24:], sub)    // subformat GUID, first two bytes
	copy(b[26:], "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
	return b
}

// chunk is one RIFF chunk, padded to an even length unless nopad.
func chunk(id string, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// riff wraps chunks in a RIFF/WAVE container.
func riff(chunks ...[]byte) []byte {
	body := bytes.Join(chunks, nil)
	b := append([]byte("RIFF\x00\x00\x00\x00WAVE"), body...)
	binary.LittleEndian.PutUint32(b[4:], uint32(4+len(body)))
	return b
}

// pcm is n samples of a test ramp, as PCM16 bytes, and the samples.
func pcm(n int) ([]byte, []int16) {
	s := make([]int16, n)
	b := make([]byte, 2*n)
	for i := range s {
		s[i] = int16(i*37 - 1000)
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s[i]))
	}
	return b, s
}

func TestParsePrompt(t *testing.T) {
	audio, samples := pcm(800)
	oddLIST := chunk("LIST", []byte("INFOISFT\x05\x00\x00\x00sox!\x00")) // 17 bytes, padded
	tests := []struct {
		name    string
		data    []byte
		wantErr string // substring; "" means valid, samples equal to the ramp
	}{
		{"canonical", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio)), ""},
		{"LIST before and after fmt, odd size padded",
			riff(oddLIST, chunk("fmt ", fmtBody(goodFmt)), oddLIST, chunk("data", audio)), ""},
		{"data before fmt, trailing chunk", riff(chunk("data", audio), chunk("fmt ", fmtBody(goodFmt)), oddLIST), ""},
		{"odd last chunk without its pad byte", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio), oddLIST[:len(oddLIST)-1]), ""},
		{"stray bytes at the end", append(riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio)), 0, 0, 0), ""},
		{"extensible PCM", riff(chunk("fmt ", extensibleBody(goodFmt, 1)), chunk("data", audio)), ""},

		{"empty file", nil, "not a WAV file (no RIFF/WAVE header), want 8000 Hz mono 16-bit PCM"},
		{"not RIFF", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "not a WAV file"},
		{"RIFF but not WAVE", []byte("RIFF\x04\x00\x00\x00AVI "), "not a WAV file"},
		{"44.1 kHz", riff(chunk("fmt ", fmtBody(promptFmt{1, 1, 44100, 16})), chunk("data", audio)),
			"44100 Hz, want 8000 Hz mono 16-bit PCM (convert with: sox in.wav -r 8000 -c 1 -b 16 out.wav)"},
		{"stereo", riff(chunk("fmt ", fmtBody(promptFmt{1, 2, 8000, 16})), chunk("data", audio)), "2 channels, want 8000 Hz mono"},
		{"8-bit", riff(chunk("fmt ", fmtBody(promptFmt{1, 1, 8000, 8})), chunk("data", audio)), "8-bit, want"},
		{"CD audio", riff(chunk("fmt ", fmtBody(promptFmt{1, 2, 44100, 16})), chunk("data", audio)), "44100 Hz, 2 channels, want"},
		{"µ-law", riff(chunk("fmt ", fmtBody(promptFmt{7, 1, 8000, 8})), chunk("data", audio)), "µ-law samples, 8-bit, want"},
		{"float", riff(chunk("fmt ", fmtBody(promptFmt{3, 1, 8000, 32})), chunk("data", audio)), "IEEE float samples"},
		{"unknown format", riff(chunk("fmt ", fmtBody(promptFmt{0x1234, 1, 8000, 16})), chunk("data", audio)), "audio format 0x1234 (not PCM)"},
		{"extensible float", riff(chunk("fmt ", extensibleBody(goodFmt, 3)), chunk("data", audio)), "IEEE float samples"},
		{"short extensible", riff(chunk("fmt ", extensibleBody(goodFmt, 1)[:20]), chunk("data", audio)), "extensible fmt chunk of 20 bytes"},
		{"short fmt", riff(chunk("fmt ", fmtBody(goodFmt)[:14]), chunk("data", audio)), "fmt chunk of 14 bytes, want at least 16"},
		{"bad block align", riff(chunk("fmt ", func() []byte { b := fmtBody(goodFmt); b[12] = 4; return b }()), chunk("data", audio)), "block align 4"},
		{"no fmt", riff(chunk("data", audio)), "no fmt chunk"},
		{"two fmt", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio)), "two fmt chunks"},
		{"no data", riff(chunk("fmt ", fmtBody(goodFmt)), oddLIST), "no data chunk"},
		{"two data", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio), chunk("data", audio)), "two data chunks"},
		{"empty data", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", nil)), "empty data chunk"},
		{"odd data", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio[:7])), "data chunk of 7 bytes is not a whole number of 16-bit samples"},
		{"truncated data", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio))[:500], `"data" chunk claims 1600 bytes but only 456 follow (truncated file?)`},
		{"streamed size", riff(chunk("fmt ", fmtBody(goodFmt)), []byte("data\xff\xff\xff\xff"), audio), "claims 4294967295 bytes"},
		{"binary chunk id", riff([]byte("\x00\x01ab\xff\x00\x00\x00")), `"??ab" chunk claims 255 bytes`},
		{"121 s", riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", make([]byte, 121*8000*2))), "121.0 s long, want at most 120 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrompt(tt.data)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				if !slices.Equal(got, samples) {
					t.Errorf("got %d samples, not the %d written", len(got), len(samples))
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrPrompt) {
				t.Errorf("error %v does not wrap ErrPrompt", err)
			}
		})
	}

	// 120 s exactly is allowed.
	if s, err := ParsePrompt(riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", make([]byte, 120*8000*2)))); err != nil || len(s) != 120*8000 {
		t.Errorf("120 s prompt: %d samples, %v", len(s), err)
	}
}

func TestLoadPrompt(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "x.wav")
	audio, _ := pcm(10)
	os.WriteFile(bad, riff(chunk("fmt ", fmtBody(promptFmt{1, 1, 44100, 16})), chunk("data", audio)), 0o644)
	_, err := LoadPrompt(bad)
	want := "prompt " + bad + ": 44100 Hz, want 8000 Hz mono 16-bit PCM (convert with: sox in.wav -r 8000 -c 1 -b 16 out.wav)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrPrompt) {
		t.Errorf("LoadPrompt(44.1 kHz) = %v\nwant %s", err, want)
	}
	missing := filepath.Join(dir, "missing.wav")
	if _, err := LoadPrompt(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadPrompt(missing) = %v, want a not-exist error naming the file", err)
	}
}

// TestDefaultDisclaimer checks the committed default prompt (scripts/gen-prompts.sh).
func TestDefaultDisclaimer(t *testing.T) {
	s, err := LoadPrompt("../configs/prompts/disclaimer.wav")
	if err != nil {
		t.Fatal(err)
	}
	secs := float64(len(s)) / PromptRate
	if secs < 2 || secs > 15 {
		t.Errorf("disclaimer is %.2f s, want 2 to 15 s", secs)
	}
	var sum float64
	peak := 0
	for _, v := range s {
		sum += float64(v) * float64(v)
		peak = max(peak, int(math.Abs(float64(v))))
	}
	// Normalised to -3 dBFS (peak ~23200); speech RMS sits 15 to 25 dB below the peak.
	if rms := math.Sqrt(sum / float64(len(s))); rms < 500 || peak < 16000 {
		t.Errorf("disclaimer RMS %.0f, peak %d: silent or far too quiet", rms, peak)
	}
}

func FuzzParsePrompt(f *testing.F) {
	audio, _ := pcm(64)
	f.Add(riff(chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio)))
	f.Add(riff(chunk("LIST", []byte("INFOx")), chunk("fmt ", fmtBody(goodFmt)), chunk("data", audio[:9])))
	f.Add(riff(chunk("fmt ", extensibleBody(goodFmt, 1)), chunk("data", audio)))
	f.Add(riff(chunk("fmt ", fmtBody(promptFmt{1, 2, 44100, 16})), chunk("data", audio)))
	f.Add(riff(chunk("fmt ", fmtBody(goodFmt)), []byte("data\xff\xff\xff\xff"), audio))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Add([]byte{})
	if b, err := os.ReadFile("../configs/prompts/disclaimer.wav"); err == nil {
		f.Add(b[:min(len(b), 4096)]) // the real file's head: a truncated data chunk
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParsePrompt(data)
		if err != nil {
			if !errors.Is(err, ErrPrompt) || s != nil {
				t.Fatalf("error %v (wraps ErrPrompt: %v) with %d samples", err, errors.Is(err, ErrPrompt), len(s))
			}
			return
		}
		if len(s) == 0 || len(s) > MaxPromptSeconds*PromptRate || 2*len(s) > len(data) {
			t.Fatalf("%d samples from %d bytes", len(s), len(data))
		}
	})
}
