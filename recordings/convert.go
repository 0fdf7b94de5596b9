package recordings

import (
	"encoding/binary"
	"fmt"
	"math"
)

// ConvertPrompt turns an uploaded WAV into a prompt the switch plays: 8000 Hz, mono, 16-bit
// PCM, at most MaxPromptSeconds, as ParsePrompt reads it. It takes PCM of 8, 16, 24 or 32
// bits or 32-bit float, 1 to 8 channels (mixed down to one) and 8 to 192 kHz (resampled with
// a windowed-sinc low-pass at 3.6 kHz, so nothing above the telephone band folds back).
// Every error wraps ErrPrompt and says what is wrong.
//
// The resampler is written here: the pure Go resamplers (gomplerate, gunter-q12/resample,
// tphakala/go-audio-resampler) and zaf/resample (cgo, libsoxr) are not served by the module
// proxy this project builds from (403 on 2026-12-06). It is one windowed-sinc FIR filter,
// tested against tones. The WAV reading is ParsePrompt's chunk walk, for more formats.
func ConvertPrompt(data []byte) ([]byte, error) {
	w, err := readUpload(data)
	if err != nil {
		return nil, err
	}
	mono := w.mono()
	if len(mono) == 0 {
		return nil, promptError("the file holds no audio")
	}
	out := resample(mono, w.rate, PromptRate)
	if len(out) == 0 {
		return nil, promptError("too short: not one sample at 8 kHz")
	}
	if len(out) > MaxPromptSeconds*PromptRate {
		return nil, promptError(fmt.Sprintf("%.1f s long, want at most %d s", float64(len(out))/PromptRate, MaxPromptSeconds))
	}
	pcm := make([]int16, len(out))
	for i, v := range out {
		pcm[i] = int16(math.Round(max(-32768, min(32767, v*32768))))
	}
	return PromptWAV(pcm), nil
}

// PromptWAV is the WAV file of 8 kHz mono 16-bit samples.
func PromptWAV(pcm []int16) []byte {
	b := make([]byte, 44+2*len(pcm))
	le := binary.LittleEndian
	copy(b[0:], "RIFF")
	le.PutUint32(b[4:], uint32(36+2*len(pcm)))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1) // PCM
	le.PutUint16(b[22:], 1)
	le.PutUint32(b[24:], PromptRate)
	le.PutUint32(b[28:], PromptRate*2)
	le.PutUint16(b[32:], 2)
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*len(pcm)))
	for i, s := range pcm {
		le.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}

// uploaded is a decoded WAV: its format and its data chunk.
type uploaded struct {
	format   uint16 // 1 PCM, 3 IEEE float
	channels int
	rate     int
	bits     int
	data     []byte
}

// readUpload reads the fmt and data chunks of a RIFF/WAVE file.
func readUpload(data []byte) (uploaded, error) {
	le := binary.LittleEndian
	var w uploaded
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return w, promptError("not a WAV file (no RIFF/WAVE header)")
	}
	var haveFmt, haveData bool
	for rest := data[12:]; len(rest) >= 8; {
		id, size := string(rest[0:4]), uint64(le.Uint32(rest[4:8]))
		rest = rest[8:]
		if size > uint64(len(rest)) {
			if id == "data" && !haveData { // some writers leave the size of a streamed file unset
				size = uint64(len(rest))
			} else {
				return w, promptError(fmt.Sprintf("%q chunk claims %d bytes but only %d follow (truncated file?)", printable(id), size, len(rest)))
			}
		}
		body := rest[:size]
		rest = rest[size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:]
		}
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return w, promptError("fmt chunk too short")
			}
			w.format, w.channels, w.rate, w.bits = le.Uint16(body[0:]), int(le.Uint16(body[2:])), int(le.Uint32(body[4:])), int(le.Uint16(body[14:]))
			if w.format == 0xFFFE && len(body) >= 26 { // WAVE_FORMAT_EXTENSIBLE: the subformat's first two bytes
				w.format = le.Uint16(body[24:])
			}
			haveFmt = true
		case "data":
			w.data, haveData = body, true
		}
	}
	switch {
	case !haveFmt:
		return w, promptError("no fmt chunk")
	case !haveData:
		return w, promptError("no data chunk")
	case w.format != 1 && w.format != 3:
		return w, promptError(fmt.Sprintf("audio format %d, want PCM or float (compressed WAV is not read)", w.format))
	case w.format == 1 && w.bits != 8 && w.bits != 16 && w.bits != 24 && w.bits != 32,
		w.format == 3 && w.bits != 32:
		return w, promptError(fmt.Sprintf("%d-bit samples, want 8, 16, 24 or 32-bit PCM, or 32-bit float", w.bits))
	case w.channels < 1 || w.channels > 8:
		return w, promptError(fmt.Sprintf("%d channels, want 1 to 8", w.channels))
	case w.rate < 8000 || w.rate > 192000:
		return w, promptError(fmt.Sprintf("%d Hz, want 8 to 192 kHz", w.rate))
	}
	frame := w.channels * w.bits / 8
	if len(w.data)/frame > (MaxPromptSeconds+1)*w.rate {
		return w, promptError(fmt.Sprintf("longer than %d s", MaxPromptSeconds))
	}
	return w, nil
}

// mono mixes the channels down to one, as floats in [-1, 1).
func (w *uploaded) mono() []float64 {
	size := w.bits / 8
	frame := w.channels * size
	n := len(w.data) / frame
	out := make([]float64, n)
	le := binary.LittleEndian
	for i := range n {
		var sum float64
		for c := range w.channels {
			p := w.data[i*frame+c*size:]
			var v float64
			switch {
			case w.format == 3:
				v = float64(math.Float32frombits(le.Uint32(p)))
			case size == 1:
				v = (float64(p[0]) - 128) / 128
			case size == 2:
				v = float64(int16(le.Uint16(p))) / 32768
			case size == 3:
				v = float64(int32(uint32(p[0])<<8|uint32(p[1])<<16|uint32(p[2])<<24)>>8) / (1 << 23)
			default:
				v = float64(int32(le.Uint32(p))) / (1 << 31)
			}
			sum += v
		}
		out[i] = sum / float64(w.channels)
	}
	return out
}

// resample converts x from rate in to rate out with a Hann-windowed sinc low-pass whose
// cutoff is 0.45 of the lower rate (3.6 kHz for 8 kHz), evaluated at each output instant.
func resample(x []float64, in, out int) []float64 {
	if in == out {
		return x
	}
	ratio := float64(in) / float64(out)
	cutoff := 0.45 * float64(min(in, out)) / float64(in) // cycles per input sample
	const zeros = 12                                     // zero crossings each side
	half := int(math.Ceil(zeros / (2 * cutoff)))
	n := int(float64(len(x)) / ratio)
	y := make([]float64, n)
	for j := range n {
		t := float64(j) * ratio
		c := int(math.Floor(t))
		var acc, norm float64
		for k := c - half + 1; k <= c+half; k++ {
			if k < 0 || k >= len(x) {
				continue
			}
			d := t - float64(k)
			arg := 2 * cutoff * d
			s := 1.0
			if arg != 0 {
				s = math.Sin(math.Pi*arg) / (math.Pi * arg)
			}
			win := 0.5 + 0.5*math.Cos(math.Pi*d/float64(half))
			h := s * win
			acc += x[k] * h
			norm += h
		}
		if norm != 0 {
			y[j] = acc / norm
		}
	}
	return y
}
