package sip

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInviteKeyOf(t *testing.T) {
	const base = "INVITE sip:+31850000001@sw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport\r\nCall-ID: abc@x\r\n%s\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n"
	key := inviteKey([]byte("z9hG4bK-1"), []byte("abc@x"))
	tests := []struct {
		name    string
		msg     string
		method  int
		initial bool
	}{
		{"initial", fmt.Sprintf(base, "To: <sip:+31850000001@sw>"), methodInvite, true},
		{"tag in the URI is no To tag", fmt.Sprintf(base, "To: <sip:+31850000001@sw;tag=uri>"), methodInvite, true},
		{"re-INVITE", fmt.Sprintf(base, "To: <sip:+31850000001@sw>;tag=abc"), methodInvite, false},
		{"compact forms", "INVITE sip:x@sw SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bK-1\ni: abc@x\nt: sip:x@sw\n\n", methodInvite, true},
		{"ACK", strings.Replace(fmt.Sprintf(base, "To: <sip:x@sw>;tag=1"), "INVITE sip", "ACK sip", 1), methodAck, false},
		{"no branch", strings.Replace(fmt.Sprintf(base, "To: <sip:x@sw>"), ";branch=z9hG4bK-1", "", 1), methodOther, false},
		{"no Call-ID", strings.Replace(fmt.Sprintf(base, "To: <sip:x@sw>"), "Call-ID: abc@x\r\n", "", 1), methodOther, false},
		{"folded", fmt.Sprintf(base, "To: <sip:x@sw>\r\n ;tag=folded"), methodOther, false},
		{"two To", fmt.Sprintf(base, "To: <sip:x@sw>\r\nTo: <sip:y@sw>;tag=2"), methodOther, false},
		{"no end of header", "INVITE sip:x@sw SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=b", methodOther, false},
		{"OPTIONS", "OPTIONS sip:x@sw SIP/2.0\r\n\r\n", methodOther, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, k, initial := inviteKeyOf([]byte(tt.msg))
			if method != tt.method || initial != tt.initial || method != methodOther && k != key {
				t.Errorf("inviteKeyOf = %d, %x, %v; want %d, %x, %v", method, k, initial, tt.method, key, tt.initial)
			}
		})
	}
}

// Over real UDP sockets: with a cap of one call, the first INVITE is passed on (and its
// retransmission too), the second is answered 503 with Retry-After and the same To tag each
// time it is retransmitted, and its ACK is absorbed; other requests pass.
func TestAdmitConnRefusesStatelessly(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	m := newAdmitMetrics()
	s := &Switch{now: time.Now, adm: newAdmission(0, 1, m)}
	c := &admitConn{PacketConn: srv, s: s}
	passed := make(chan string, 10)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				close(passed)
				return
			}
			passed <- strings.SplitN(string(buf[:n]), "\r\n", 2)[0] + " " + header(string(buf[:n]), "Via")
		}
	}()
	port := cli.LocalAddr().(*net.UDPAddr).Port
	invite := func(branch, method string) string {
		return fmt.Sprintf("%s sip:+31850000001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"+
			"From: <sip:+31612345678@127.0.0.1>;tag=f\r\nTo: <sip:+31850000001@127.0.0.1>\r\nCall-ID: call-%s\r\n"+
			"CSeq: 1 %s\r\nContact: <sip:+31612345678@127.0.0.1:%d>\r\nContent-Length: 0\r\n\r\n", method, port, branch, branch, method, port)
	}
	send := func(msg string) {
		if _, err := cli.WriteTo([]byte(msg), srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() string {
		cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := cli.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return string(buf[:n])
	}
	wantPassed := func(prefix string) {
		t.Helper()
		select {
		case got := <-passed:
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("passed %q, want %q", got, prefix)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("nothing passed, want %q", prefix)
		}
	}

	send(invite("z9hG4bK-a", "INVITE"))
	wantPassed("INVITE sip:+31850000001@127.0.0.1 SIP/2.0 SIP/2.0/UDP 127.0.0.1")
	send(invite("z9hG4bK-b", "INVITE"))
	first := recv()
	send(invite("z9hG4bK-b", "INVITE")) // retransmitted
	again := recv()
	for _, res := range []string{first, again} {
		if !strings.HasPrefix(res, "SIP/2.0 503 ") || header(res, "Retry-After") != shedRetryAfter ||
			!strings.Contains(header(res, "Via"), "branch=z9hG4bK-b") || header(res, "Call-ID") != "call-z9hG4bK-b" {
			t.Errorf("answer to the refused INVITE:\n%s", res)
		}
	}
	if header(first, "To") != header(again, "To") || !strings.Contains(header(first, "To"), ";tag=") {
		t.Errorf("To of the 503 and of its retransmission: %q, %q; want one tagged To", header(first, "To"), header(again, "To"))
	}
	send(invite("z9hG4bK-b", "ACK"))    // the 503's ACK: absorbed
	send(invite("z9hG4bK-a", "INVITE")) // the admitted INVITE retransmitted: passed on
	wantPassed("INVITE sip:+31850000001@127.0.0.1 SIP/2.0 SIP/2.0/UDP 127.0.0.1")
	send(strings.Replace(invite("z9hG4bK-c", "OPTIONS"), "To: <sip:+31850000001@127.0.0.1>", "To: <sip:x@127.0.0.1>", 1))
	wantPassed("OPTIONS ")
	if got := testutil.ToFloat64(m.shed.WithLabelValues(shedMaxCPS)); got != 1 {
		t.Errorf("shed_total{max_cps} = %v, want 1 (a retransmission is not counted again)", got)
	}
	srv.Close()
	for range passed {
	}
}

// header is the value of the first header named name in a message.
func header(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// BenchmarkInviteKeyOf is admitConn's scan of every INVITE over UDP.
func BenchmarkInviteKeyOf(b *testing.B) {
	msg := []byte("INVITE sip:+31850000001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-28436-5-0;rport\r\n" +
		"From: <sip:+31612345678@127.0.0.1:5061>;tag=28436T005\r\nTo: <sip:+31850000001@127.0.0.1:5060>\r\nCall-ID: 5-28436@127.0.0.1\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:+31612345678@127.0.0.1:5061;transport=UDP>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if m, _, initial := inviteKeyOf(msg); m != methodInvite || !initial {
			b.Fatal("not an initial INVITE")
		}
	}
}
