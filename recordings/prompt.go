package recordings

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// Prompt limits.
const (
	PromptRate       = 8000 // Hz
	MaxPromptSeconds = 120
)

const promptWant = "want 8000 Hz mono 16-bit PCM (convert with: sox in.wav -r 8000 -c 1 -b 16 out.wav)"

// LoadPrompt reads the WAV prompt at path; see ParsePrompt. Errors name the file.
func LoadPrompt(path string) ([]int16, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompt %s: %w", path, err)
	}
	s, err := ParsePrompt(data)
	if err != nil {
		return nil, fmt.Errorf("prompt %s: %w", path, err)
	}
	return s, nil
}

// ParsePrompt decodes a WAV prompt (a disclaimer or announcement) into linear samples.
// The file must be RIFF/WAVE with a PCM fmt chunk, 1 channel, 8000 Hz, 16 bits, and a
// data chunk of 1 sample to 120 s. Other chunks (LIST, fact, cue, ...) are skipped,
// wherever they are. WAVE_FORMAT_EXTENSIBLE is accepted when its subformat is PCM.
// Every error wraps ErrPrompt and says what is wrong and what is expected.
func ParsePrompt(data []byte) ([]int16, error) {
	le := binary.LittleEndian
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, promptError("not a WAV file (no RIFF/WAVE header), " + promptWant)
	}
	var fmtChunk, audio []byte
	haveData := false
	for rest := data[12:]; len(rest) > 0; {
		if len(rest) < 8 {
			break // a few stray bytes after the last chunk: ignored, as most readers do
		}
		id, size := string(rest[0:4]), uint64(le.Uint32(rest[4:8]))
		rest = rest[8:]
		if size > uint64(len(rest)) {
			return nil, promptError(fmt.Sprintf("%q chunk claims %d bytes but only %d follow (truncated file?)",
				printable(id), size, len(rest)))
		}
		body := rest[:size]
		rest = rest[size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:] // RIFF pads odd-sized chunks to an even length
		}
		switch id {
		case "fmt ":
			if fmtChunk != nil {
				return nil, promptError("two fmt chunks, want one")
			}
			fmtChunk = body
		case "data":
			if haveData {
				return nil, promptError("two data chunks, want one")
			}
			audio, haveData = body, true
		}
	}
	if fmtChunk == nil {
		return nil, promptError("no fmt chunk, " + promptWant)
	}
	if err := checkPromptFormat(fmtChunk); err != nil {
		return nil, err
	}
	switch {
	case !haveData:
		return nil, promptError("no data chunk (no audio)")
	case len(audio) == 0:
		return nil, promptError("empty data chunk (no audio)")
	case len(audio)%2 != 0:
		return nil, promptError(fmt.Sprintf("data chunk of %d bytes is not a whole number of 16-bit samples", len(audio)))
	case len(audio) > MaxPromptSeconds*PromptRate*2:
		return nil, promptError(fmt.Sprintf("%.1f s long, want at most %d s",
			float64(len(audio)/2)/PromptRate, MaxPromptSeconds))
	}
	s := make([]int16, len(audio)/2)
	for i := range s {
		s[i] = int16(le.Uint16(audio[2*i:]))
	}
	return s, nil
}

// checkPromptFormat checks a fmt chunk body against 8000 Hz mono 16-bit PCM.
func checkPromptFormat(b []byte) error {
	le := binary.LittleEndian
	if len(b) < 16 {
		return promptError(fmt.Sprintf("fmt chunk of %d bytes, want at least 16", len(b)))
	}
	format := le.Uint16(b[0:])
	if format == 0xFFFE { // WAVE_FORMAT_EXTENSIBLE: the real format is the subformat GUID's first two bytes
		if len(b) < 40 {
			return promptError(fmt.Sprintf("extensible fmt chunk of %d bytes, want 40", len(b)))
		}
		format = le.Uint16(b[24:])
	}
	ch, rate, blockAlign, bits := le.Uint16(b[2:]), le.Uint32(b[4:]), le.Uint16(b[12:]), le.Uint16(b[14:])
	var wrong []string
	if format != 1 {
		wrong = append(wrong, formatName(format))
	}
	if rate != PromptRate {
		wrong = append(wrong, fmt.Sprintf("%d Hz", rate))
	}
	if ch != 1 {
		wrong = append(wrong, fmt.Sprintf("%d channels", ch))
	}
	if bits != 16 {
		wrong = append(wrong, fmt.Sprintf("%d-bit", bits))
	}
	if len(wrong) > 0 {
		return promptError(strings.Join(wrong, ", ") + ", " + promptWant)
	}
	if blockAlign != 2 {
		return promptError(fmt.Sprintf("fmt chunk block align %d, want 2 for mono 16-bit (damaged header?)", blockAlign))
	}
	return nil
}

func formatName(f uint16) string {
	switch f {
	case 3:
		return "IEEE float samples"
	case 6:
		return "A-law samples"
	case 7:
		return "µ-law samples"
	case 0x11:
		return "IMA ADPCM samples"
	case 0x55:
		return "MP3 data"
	}
	return fmt.Sprintf("audio format 0x%04x (not PCM)", f)
}

// printable keeps a chunk id safe for an error message.
func printable(id string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, id)
}
