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

// The packetization times the anchor sends its own frames at (prompts, tones, silence): what
// a leg's SDP asks for with a=ptime, bounded by its a=maxptime (RFC 4566 §6), within these
// bounds; 20 ms when it says nothing (frameSamples).
const (
	minPtime        = 10 // ms
	maxPtime        = 60 // ms
	maxFrameSamples = maxPtime * 8
)

// frameOr is a frame of n samples, as a leg's or an SDP's ptime holds it: frameSamples when 0.
func frameOr(n int) int {
	if n == 0 {
		return frameSamples
	}
	return n
}

// Prompt is audio the anchor plays into a leg, prepared in both laws and cut into frames of
// the leg's packetization time as it plays.
type Prompt struct {
	Name    string
	samples int       // the audio's length, before padding
	law     [3][]byte // by g711.Law: the audio, then maxFrameSamples of silence
}

// NewPrompt prepares 8 kHz linear samples; the last frame of any size is padded with silence.
func NewPrompt(name string, pcm []int16) *Prompt {
	n := max(1, len(pcm))
	padded := make([]int16, n+maxFrameSamples)
	copy(padded, pcm)
	p := &Prompt{Name: name, samples: n}
	p.law[g711.ULaw] = g711.Encode(nil, padded, g711.ULaw)
	p.law[g711.ALaw] = g711.Encode(nil, padded, g711.ALaw)
	return p
}

// Frames is the prompt's length in 20 ms frames.
func (p *Prompt) Frames() int { return p.framesOf(frameSamples) }

// framesOf is the prompt's length in frames of n samples, the last one padded.
func (p *Prompt) framesOf(n int) int { return (p.samples + n - 1) / n }

// frame is 20 ms frame i (wrapping) in law l.
func (p *Prompt) frame(l g711.Law, i int) []byte { return p.frameOf(l, i, frameSamples) }

// frameOf is frame i (wrapping) of n samples (at most maxFrameSamples) in law l.
func (p *Prompt) frameOf(l g711.Law, i, n int) []byte {
	i %= p.framesOf(n)
	return p.law[l][i*n : (i+1)*n]
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

// silence is the longest frame of silence in each law; a frame of n samples is its first n.
var silence = func() [3][]byte {
	var s [3][]byte
	for _, l := range []g711.Law{g711.ULaw, g711.ALaw} {
		s[l] = make([]byte, maxFrameSamples)
		for i := range s[l] {
			s[l][i] = l.Silence()
		}
	}
	return s
}()
