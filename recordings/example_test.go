package recordings_test

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/trackline/trackline/g711"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store/keyring"
)

// A call of two and a half seconds: the media relay fills one chunk per second of call,
// caller on the left, business line on the right, and submits it; the call's owner
// finishes the recording when the call ends and stores the Info with the call record.
func Example() {
	dir, err := os.MkdirTemp("", "recordings-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	keys, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		panic(err)
	}
	r, err := recordings.New(recordings.Options{Dir: filepath.Join(dir, "recordings"), Keys: keys})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	rec, err := r.Open("bakery", "call-0001", start)
	if err != nil {
		panic(err)
	}
	for sec := range uint32(3) {
		c := rec.NewChunk(sec)
		if sec == 2 {
			c.N = 4000 // the call ended half-way through its third second
		}
		for i := range c.N {
			c.L[i] = g711.EncodeULaw(int16(4000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
		}
		rec.Submit(c) // never blocks; false means the chunk was dropped (and counted)
	}
	info, err := rec.Finish()
	if err != nil {
		panic(err)
	}
	fmt.Println(info.Rel, info.Duration, info.Size, info.Dropped)

	// Reading it back: the plain WAV, decrypted one chunk at a time as it is read.
	wav, err := recordings.Open(keys, info.Path)
	if err != nil {
		panic(err)
	}
	defer wav.Close()
	head := make([]byte, 4)
	io.ReadFull(wav, head)
	fmt.Println(string(head), wav.Size())
	// Output:
	// bakery/2026/05/01/call-0001.wav.enc 2.5s 80044 0
	// RIFF 80044
}
