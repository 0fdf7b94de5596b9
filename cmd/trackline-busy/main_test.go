package main

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestBusyRunsItsShareAndStops(t *testing.T) {
	var out, errb bytes.Buffer
	start := time.Now()
	if rc := realMain([]string{"-on", "20ms", "-off", "20ms", "-for", "400ms"}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d, stderr %q", rc, errb.String())
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 3*time.Second {
		t.Fatalf("ran for %v, want -for's 400ms (and not much more)", took)
	}
	m := regexp.MustCompile(`^busy ([\d.]+) s of CPU in ([\d.]+) s \(([\d.]+) %\)\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	// Half of the time at most, and some of it: the machine may give the thread less.
	if share, _ := strconv.ParseFloat(m[3], 64); share <= 0 || share > 75 {
		t.Fatalf("busy %v %% of the time with -on 20ms -off 20ms", share)
	}
}

func TestBusyRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-on", "0"}, {"-off", "-1ms"}, {"-for", "0"}, {"extra"}} {
		var out, errb bytes.Buffer
		if rc := realMain(args, &out, &errb); rc != 2 {
			t.Errorf("%q: rc %d, want 2", args, rc)
		}
	}
}
