package cputime

import (
	"testing"
	"time"
)

func TestProcessGrowsWithWork(t *testing.T) {
	before := Process()
	if before <= 0 {
		t.Fatalf("Process() = %v at the start of a test: want the CPU the process used so far", before)
	}
	var sink uint64
	deadline := time.Now().Add(5 * time.Second)
	for Process()-before < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("Process() grew by %v in 5 s of a busy loop", Process()-before)
		}
		for i := range uint64(100_000) {
			sink += i * i
		}
	}
	_ = sink
}
