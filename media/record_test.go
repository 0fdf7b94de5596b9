package media

import (
	"encoding/binary"
	"io"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// tone is 160 µ-law samples of a sine at hz, continuing from sample n.
func tone(hz float64, n int) []byte {
	p := make([]byte, 160)
	for i := range p {
		p[i] = g711.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*hz*float64(n+i)/8000)))
	}
	return p
}

// power is the mean square of a channel of stereo PCM16 frames in [from, to).
func power(data []byte, ch, from, to int) float64 {
	var sum float64
	for i := from; i < to; i++ {
		v := float64(int16(binary.LittleEndian.Uint16(data[4*i+2*ch:])))
		sum += v * v
	}
	return sum / float64(to-from)
}

// The recording is stereo, caller left and business line right, and a stretch where one
// side's packets were lost is silence on that side only.
func TestRecordingChannelsAndGaps(t *testing.T) {
	eachIO(t, func(t *testing.T, mode string) {
		f := newFixture(t, Config{IO: mode}, recordingCustomer())
		a, b := newEndpoint(t, "127.0.0.1"), newEndpoint(t, "127.0.0.1")
		s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
		const packets = 100 // 2 s
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range packets {
			<-tick.C
			if i < 40 || i >= 60 { // the caller's packets 40..59 are lost
				a.send(toA, 0, tone(400, i*160))
			} else {
				a.seq++
				a.ts += 160
			}
			b.send(toB, 0, tone(1000, i*160))
		}
		time.Sleep(50 * time.Millisecond)
		var rec store.Call
		r := s.Close(&rec)
		if r == nil {
			t.Fatal("no recording")
		}
		if rec.Media.FromCaller.Lost != 20 {
			t.Errorf("caller loss %d, want 20", rec.Media.FromCaller.Lost)
		}
		plain, err := recordings.Open(f.rec.Keys(), filepath.Join(f.rec.Dir(), r.Path))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(plain)
		plain.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(data[:4]) != "RIFF" || binary.LittleEndian.Uint16(data[22:]) != 2 || binary.LittleEndian.Uint32(data[24:]) != 8000 {
			t.Fatalf("not a stereo 8 kHz WAV: % x", data[:44])
		}
		pcm := data[44:]
		frames := len(pcm) / 4
		if d := float64(frames) / 8000; d < 1.9 || d > 2.6 {
			t.Fatalf("duration %.2f s, want about 2", d)
		}
		// Find the caller's first sample: the channels are aligned by arrival of the first
		// packet, so look at the first 0.3 s for where audio starts.
		if p := power(pcm, 0, 3200, 4800); p < 1e6 { // 0.4-0.6 s: caller tone
			t.Errorf("left channel silent where the caller spoke: %.0f", p)
		}
		// The lost packets (0.8-1.2 s as sent) are silence on the left: a stretch of at least
		// 0.3 s somewhere in 0.5-1.6 s (where it falls moves with how late the sender's
		// ticks came on a busy machine), while the right channel holds the line's tone.
		const block = 160 // 20 ms
		silent, longest, at := 0, 0, 0
		for i := 4000; i+block <= min(frames, 12800); i += block {
			if power(pcm, 0, i, i+block) > 1e3 {
				silent = 0
				continue
			}
			if silent++; silent > longest {
				longest, at = silent, i-(silent-1)*block
			}
		}
		if longest*block < 2400 {
			t.Errorf("left channel: longest silence in 0.5-1.6 s is %d ms, want 300 ms or more over the lost packets", longest*20)
		} else if p := power(pcm, 1, at, at+longest*block); p < 1e6 {
			t.Errorf("right channel silent where the business line spoke (%.2f-%.2f s): %.0f", float64(at)/8000, float64(at+longest*block)/8000, p)
		}
	})
}
