package main

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSinkReadsAndCounts binds two ports, sends datagrams to both and checks that every one
// was read and counted, and that the ports drew no ICMP (no send fails).
func TestSinkReadsAndCounts(t *testing.T) {
	ports := make([]string, 2)
	for i := range ports {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = c.LocalAddr().String()
		c.Close() // a free port now; the sink binds it below
	}
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- realMain([]string{"-listen", strings.Join(ports, ","), "-duration", "2s"}, &out, &errb)
	}()
	// A connected socket's send to a port nobody reads fails with ECONNREFUSED on the next
	// send (the ICMP port unreachable): every send below succeeding shows none came.
	send := func(addr string, n, size int) {
		t.Helper()
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := c.Write(p); err != nil {
				t.Fatalf("send %d to %s: %v", i, addr, err)
			}
			if i%50 == 49 {
				time.Sleep(time.Millisecond) // within the sink's buffer
			}
		}
	}
	deadline := time.Now().Add(time.Second)
	for !portBound(ports[0]) || !portBound(ports[1]) {
		if time.Now().After(deadline) {
			t.Fatal("the sink did not bind in 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(ports[0], 1000, 172)
	send(ports[1], 300, 60)
	if rc := <-done; rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	for i, want := range []struct{ n, bytes int }{{1000, 1000 * 172}, {300, 300 * 60}} {
		line := fmt.Sprintf("%s datagrams %d bytes %d\n", ports[i], want.n, want.bytes)
		if !strings.Contains(out.String(), line) {
			t.Errorf("output %q lacks %q", out.String(), line)
		}
	}
}

// portBound is whether addr's UDP port is taken (a bind to it fails).
func portBound(addr string) bool {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return false
	}
	c, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// TestSinkBadArgs: a port taken or no -listen is an error, not a silent sink.
func TestSinkBadArgs(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out, errb bytes.Buffer
	if rc := realMain([]string{"-listen", c.LocalAddr().String()}, &out, &errb); rc != 1 {
		t.Errorf("a taken port: exit %d, want 1 (%s)", rc, errb.String())
	}
	if rc := realMain(nil, &out, &errb); rc != 2 {
		t.Errorf("no -listen: exit %d, want 2", rc)
	}
}

// With -read=false the ports are bound (no ICMP: every send succeeds) and nothing is read.
func TestSinkDrops(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().String()
	c.Close()
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() { done <- realMain([]string{"-listen", port, "-read=false", "-duration", "1s"}, &out, &errb) }()
	deadline := time.Now().Add(time.Second)
	for !portBound(port) {
		if time.Now().After(deadline) {
			t.Fatal("the sink did not bind in 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := net.Dial("udp4", port)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		if _, err := s.Write(make([]byte, 172)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if rc := <-done; rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	if want := port + " datagrams 0 bytes 0\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}
