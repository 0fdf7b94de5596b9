package media

import (
	"math"

	"github.com/trackline/trackline/g711"
)

// frameSamples is one 20 ms packet at 8 kHz (RFC 3551 §4.5: the default ptime of G.711).
const (
	frameSamples = 160
	frameNanos   = 20_000_000
)

// Prompt is audio the anchor plays into a leg, prepared as 20 ms frames in both laws.
type Prompt struct {
	Name   string
	frames int
	law    [3][]byte // by g711.Law
}

// NewPrompt prepares 8 kHz linear samples; the last frame is padded with silence.
func NewPrompt(name string, pcm []int16) *Prompt {
	n := (len(pcm) + frameSamples - 1) / frameSamples
	padded := make([]int16, n*frameSamples)
	copy(padded, pcm)
	p := &Prompt{Name: name, frames: n}
	p.law[g711.ULaw] = g711.Encode(nil, padded, g711.ULaw)
	p.law[g711.ALaw] = g711.Encode(nil, padded, g711.ALaw)
	return p
}

// Frames is the prompt's length in 20 ms frames.
func (p *Prompt) Frames() int { return p.frames }

// frame is frame i (wrapping) in law l.
func (p *Prompt) frame(l g711.Law, i int) []byte {
	i %= p.frames
	return p.law[l][i*frameSamples : (i+1)*frameSamples]
}

// ringback is the tone the caller hears after the disclaimer while the business line still
// rings: 425 Hz, one second on, four off (ITU-T E.180, as Dutch exchanges play it).
var ringback = func() *Prompt {
	pcm := make([]int16, 5*8000)
	for i := range 8000 {
		pcm[i] = int16(0.25 * 32767 * math.Sin(2*math.Pi*425*float64(i)/8000))
	}
	return NewPrompt("ringback", pcm)
}()

// silence is one frame of silence in each law.
var silence = func() [3][]byte {
	var s [3][]byte
	for _, l := range []g711.Law{g711.ULaw, g711.ALaw} {
		s[l] = make([]byte, frameSamples)
		for i := range s[l] {
			s[l][i] = l.Silence()
		}
	}
	return s
}()
