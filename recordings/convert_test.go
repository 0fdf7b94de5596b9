package recordings

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// wavOf builds a WAV of a tone: format 1 (PCM) or 3 (float), channels, rate, bits.
func wavOf(format uint16, channels, rate, bits int, seconds, hz float64) []byte {
	n := int(seconds * float64(rate))
	size := bits / 8
	data := make([]byte, n*channels*size)
	le := binary.LittleEndian
	for i := range n {
		v := 0.5 * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))
		for c := range channels {
			p := data[(i*channels+c)*size:]
			switch {
			case format == 3:
				le.PutUint32(p, math.Float32bits(float32(v)))
			case size == 1:
				p[0] = byte(128 + v*127)
			case size == 2:
				le.PutUint16(p, uint16(int16(v*32767)))
			case size == 3:
				x := int32(v * (1<<23 - 1))
				p[0], p[1], p[2] = byte(x), byte(x>>8), byte(x>>16)
			default:
				le.PutUint32(p, uint32(int32(v*(1<<31-1))))
			}
		}
	}
	b := make([]byte, 44, 44+len(data))
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(36+len(data)))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], format)
	le.PutUint16(b[22:], uint16(channels))
	le.PutUint32(b[24:], uint32(rate))
	le.PutUint32(b[28:], uint32(rate*channels*size))
	le.PutUint16(b[32:], uint16(channels*size))
	le.PutUint16(b[34:], uint16(bits))
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(len(data)))
	return append(b, data...)
}

// level is the RMS of samples at the frequency hz (a single-bin DFT), relative to full scale.
func level(pcm []int16, hz float64) float64 {
	var re, im float64
	for i, s := range pcm {
		a := 2 * math.Pi * hz * float64(i) / PromptRate
		re += float64(s) * math.Cos(a)
		im += float64(s) * math.Sin(a)
	}
	return 2 * math.Hypot(re, im) / float64(len(pcm)) / 32768
}

// TestConvertPrompt: uploads in common formats become 8 kHz mono 16-bit prompts that
// ParsePrompt accepts, of the same length and keeping a 1 kHz tone's level; a 6 kHz tone
// (above the telephone band) is filtered out instead of folding back to 2 kHz.
func TestConvertPrompt(t *testing.T) {
	for _, c := range []struct {
		name                 string
		format               uint16
		channels, rate, bits int
	}{
		{"8k mono 16", 1, 1, 8000, 16}, {"44.1k stereo 16", 1, 2, 44100, 16}, {"48k stereo 24", 1, 2, 48000, 24},
		{"16k mono 8", 1, 1, 16000, 8}, {"22.05k mono float", 3, 1, 22050, 32}, {"96k 6ch 32", 1, 6, 96000, 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := ConvertPrompt(wavOf(c.format, c.channels, c.rate, c.bits, 1, 1000))
			if err != nil {
				t.Fatal(err)
			}
			pcm, err := ParsePrompt(out)
			if err != nil {
				t.Fatalf("ParsePrompt of the converted prompt: %v", err)
			}
			if n := len(pcm); n < 7990 || n > 8000 {
				t.Errorf("%d samples, want about 8,000 (1 s)", n)
			}
			if l := level(pcm[400:7600], 1000); math.Abs(l-0.5) > 0.03 {
				t.Errorf("1 kHz tone at %.3f of full scale, want 0.5", l)
			}
			if c.rate >= 16000 {
				hi, err := ConvertPrompt(wavOf(c.format, c.channels, c.rate, c.bits, 1, 6000))
				if err != nil {
					t.Fatal(err)
				}
				p, _ := ParsePrompt(hi)
				if l := level(p[400:7600], 2000); l > 0.01 {
					t.Errorf("a 6 kHz tone folded back to 2 kHz at %.3f", l)
				}
			}
		})
	}
}

func TestConvertPromptRefuses(t *testing.T) {
	long := wavOf(1, 1, 8000, 16, MaxPromptSeconds+2, 440)
	mp3ish := wavOf(1, 1, 8000, 16, 0.1, 440)
	binary.LittleEndian.PutUint16(mp3ish[20:], 0x55) // MPEG Layer 3 in a WAV
	for name, data := range map[string][]byte{
		"not a WAV": []byte("ID3\x03\x00 this is an mp3"), "empty": nil, "too long": long, "compressed": mp3ish,
		"no data": wavOf(1, 1, 8000, 16, 0, 440)[:36],
	} {
		if _, err := ConvertPrompt(data); !errors.Is(err, ErrPrompt) {
			t.Errorf("%s: %v, want ErrPrompt", name, err)
		}
	}
}

func FuzzConvertPrompt(f *testing.F) {
	f.Add(wavOf(1, 2, 44100, 16, 0.01, 440))
	f.Add(wavOf(3, 1, 8000, 32, 0.01, 440))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ConvertPrompt(data)
		if err == nil {
			if _, err := ParsePrompt(out); err != nil {
				t.Fatalf("a converted prompt does not parse: %v", err)
			}
		}
	})
}
