package media

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// routeChild is set in the environment of the copy of the test binary that runs
// TestKernelPathRoutesOut inside network namespaces of its own.
const routeChild = "TRACKLINE_TEST_ROUTE_CHILD"

// TestKernelPathRoutesOut: peers that are not on loopback get their packets routed out of
// the interface, by the kernel path, through the route and neighbour tables. The test runs
// a copy of itself in a new network namespace (unshare -n), with a veth pair to a second
// namespace where both peers are: the anchor is 10.201.0.1 on tlv0, the peers 10.201.0.2.
func TestKernelPathRoutesOut(t *testing.T) {
	if os.Getenv(routeChild) == "" {
		if err := kernelAvailable(); err != nil {
			t.Skipf("the kernel path cannot load here: %v", err)
		}
		for _, tool := range []string{"unshare", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed: %v", tool, err)
			}
		}
		cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^TestKernelPathRoutesOut$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), routeChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestKernelPathRoutesOut") {
			t.Fatalf("in its own network namespace: %v\n%s", err, out)
		}
		return
	}
	peerNS := routeNamespaces(t)

	f := newFixture(t, Config{IO: ioKernel, IP: netip.MustParseAddr("10.201.0.1")}, recordingCustomer())
	var a, b *endpoint
	inNamespace(t, peerNS, func() { a, b = newEndpoint(t, "10.201.0.2"), newEndpoint(t, "10.201.0.2") })
	if a == nil || b == nil {
		t.FailNow()
	}
	s, toA, toB := bridged(t, f, a, b, []string{"0"}, []string{"0"})
	for i := range 30 {
		a.send(toA, 0, payload(byte(i)))
		if p, ok := b.recv(2 * time.Second); !ok || p.Payload[0] != byte(i) {
			t.Fatalf("packet %d from the caller not relayed (%v)", i, ok)
		}
		b.send(toB, 0, payload(byte(100+i)))
		if q, ok := a.recv(2 * time.Second); !ok || q.Payload[0] != byte(100+i) {
			t.Fatalf("packet %d from the business line not relayed (%v)", i, ok)
		}
	}
	// As on loopback: three packets latch and put the flows in; the kernel routes the rest.
	if n := kernelForwarded(f); n != 60-3 {
		t.Errorf("the kernel forwarded %d packets, want %d", n, 60-3)
	}
	if r := s.Close(nil); r == nil {
		t.Fatal("no recording")
	}

	// Peers on the host's own address (not loopback) have no route out: the relay keeps
	// their call, and asks the routing table once per direction, not per packet.
	before := kernelForwarded(f)
	c, d := newEndpoint(t, "10.201.0.1"), newEndpoint(t, "10.201.0.1")
	s2, toC, toD := bridged(t, f, c, d, []string{"0"}, []string{"0"})
	for i := range 20 {
		c.send(toC, 0, payload(byte(i)))
		if p, ok := d.recv(2 * time.Second); !ok || p.Payload[0] != byte(i) {
			t.Fatalf("local call: packet %d not relayed (%v)", i, ok)
		}
		d.send(toD, 0, payload(byte(i)))
		if _, ok := c.recv(2 * time.Second); !ok {
			t.Fatalf("local call: packet %d back not relayed", i)
		}
	}
	if n := kernelForwarded(f) - before; n != 0 {
		t.Errorf("the kernel forwarded %d packets of a call between the host's own addresses", n)
	}
	s2.mu.Lock()
	refused := s2.legs[caller].kernelRefused && s2.legs[callee].kernelRefused
	s2.mu.Unlock()
	if !refused {
		t.Error("the legs are not marked refused")
	}
	s2.Close(nil)
	time.Sleep(1100 * time.Millisecond) // the loops publish their tallies once a second
	if got := testutil.ToFloat64(f.e.m.kernelErr); got != 2 {
		t.Errorf("trackline_media_kernel_flow_errors_total = %v, want 2 (once per direction)", got)
	}
}

// routeNamespaces sets the test's namespace up (loopback and tlv0 at 10.201.0.1/24) and a
// peer namespace behind tlv0's veth peer (10.201.0.2/24), held by a sleeping process; it
// returns a descriptor of the peer namespace.
func routeNamespaces(t *testing.T) int {
	t.Helper()
	holder := exec.Command("unshare", "-n", "sleep", "120")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	pid := fmt.Sprint(holder.Process.Pid)
	nsPath := "/proc/" + pid + "/ns/net"
	deadline := time.Now().Add(5 * time.Second)
	for { // until unshare has moved it
		self, _ := os.Readlink("/proc/self/ns/net")
		other, _ := os.Readlink(nsPath)
		if other != "" && other != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the peer namespace did not appear")
		}
		time.Sleep(5 * time.Millisecond)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "link", "set", "lo", "up")
	run("ip", "link", "add", "tlv0", "type", "veth", "peer", "name", "tlv1", "netns", pid)
	run("ip", "addr", "add", "10.201.0.1/24", "dev", "tlv0")
	run("ip", "link", "set", "tlv0", "up")
	run("nsenter", "--net="+nsPath, "ip", "link", "set", "lo", "up")
	run("nsenter", "--net="+nsPath, "ip", "addr", "add", "10.201.0.2/24", "dev", "tlv1")
	run("nsenter", "--net="+nsPath, "ip", "link", "set", "tlv1", "up")
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// inNamespace runs fn on a thread that has entered the network namespace ns: the sockets fn
// opens belong to it.
func inNamespace(t *testing.T, ns int, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer close(done)      // also when fn fails the test (runtime.Goexit)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, namespace and all
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
