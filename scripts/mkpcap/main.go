// Command mkpcap writes the two RTP streams `make call` plays (scripts/call.sh): the
// caller's and the business line's audio as µ-law pcap files for sipp, each a different
// pattern of tones, so that both directions are heard and told apart in the recording.
//
//	go run ./scripts/mkpcap DIR SECONDS
package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/internal/rtpcap"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkpcap DIR SECONDS")
		os.Exit(2)
	}
	secs, err := strconv.Atoi(os.Args[2])
	if err != nil || secs < 1 || secs > 600 {
		fmt.Fprintln(os.Stderr, "mkpcap: SECONDS must be 1-600")
		os.Exit(2)
	}
	for _, f := range []struct {
		name   string
		hz     []float64 // a tone per half second, in turn
		ssrc   uint32
		offset float64 // seconds of silence first, so the two sides alternate
	}{{"caller.pcap", []float64{440, 554}, 0xCA11E4, 0}, {"callee.pcap", []float64{660, 880}, 0xCA11EE, 0.25}} {
		pcm := make([]int16, secs*8000)
		for i := range pcm {
			t := float64(i)/8000 - f.offset
			if t < 0 || math.Mod(t, 1) >= 0.5 { // half a second of tone, half of quiet
				continue
			}
			hz := f.hz[int(t)%len(f.hz)]
			pcm[i] = int16(8000 * math.Sin(2*math.Pi*hz*t))
		}
		path := filepath.Join(os.Args[1], f.name)
		if err := os.WriteFile(path, rtpcap.PCMU(g711.Encode(nil, pcm, g711.ULaw), f.ssrc), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mkpcap:", err)
			os.Exit(1)
		}
	}
}
