// Command trackline-rtpsink binds UDP ports and reads and discards every datagram that
// reaches them, as a far trunk's or business line's media ports would take the RTP a switch
// sends them. scripts/bench-sip.sh runs it on the media ports its sipp scenarios announce
// (sipp sends and reads no RTP there): without it, each packet the switch plays to them (the
// disclaimer, the line's silence) draws an ICMP port unreachable, which on loopback the
// switch's own send pays for and which no real peer's open port would cause.
//
// It reads with recvmmsg (golang.org/x/net/ipv4 ReadBatch), up to 64 datagrams a call, so
// that the sink costs the shared cores as little as it can, and counts what it read. It
// runs until SIGTERM or SIGINT (or -duration), then prints one line per port:
//
//	127.0.0.1:49170 datagrams 1775000 bytes 305300000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

// batch is how many datagrams one read takes at most.
const batch = 64

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trackline-rtpsink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "comma-separated UDP addresses to bind, e.g. 127.0.0.1:49170,127.0.0.1:49180")
	rcvbuf := fs.Int("rcvbuf", 4<<20, "each socket's SO_RCVBUF in bytes (capped by net.core.rmem_max)")
	duration := fs.Duration("duration", 0, "stop after this long (0: at SIGTERM or SIGINT only)")
	read := fs.Bool("read", true, "read and count what arrives; false: never read, with the least receive buffer, so that the kernel drops the datagrams at the full socket (the cheapest a peer on loopback can be; the drops count in /proc/net/udp and RcvbufErrors)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *listen == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "trackline-rtpsink: want -listen addr[,addr...] and no arguments")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if !*read {
		*rcvbuf = 1 // the kernel's least
	}
	sinks, err := bind(strings.Split(*listen, ","), *rcvbuf)
	if err != nil {
		fmt.Fprintln(stderr, "trackline-rtpsink:", err)
		return 1
	}
	var wg sync.WaitGroup
	for _, s := range sinks {
		if *read {
			wg.Go(s.drain)
		}
	}
	<-ctx.Done()
	for _, s := range sinks {
		s.conn.Close() // ends drain's read
	}
	wg.Wait()
	for _, s := range sinks {
		fmt.Fprintf(stdout, "%s datagrams %d bytes %d\n", s.conn.LocalAddr(), s.datagrams, s.bytes)
	}
	return 0
}

// sink is one bound port and what was read from it.
type sink struct {
	conn             *net.UDPConn
	datagrams, bytes int64 // written by drain only; read after it returned
}

// bind binds every address (closing those bound already when one fails).
func bind(addrs []string, rcvbuf int) ([]*sink, error) {
	var sinks []*sink
	for _, a := range addrs {
		ua, err := net.ResolveUDPAddr("udp4", strings.TrimSpace(a))
		if err == nil {
			var c *net.UDPConn
			if c, err = net.ListenUDP("udp4", ua); err == nil {
				if err = c.SetReadBuffer(rcvbuf); err == nil {
					sinks = append(sinks, &sink{conn: c})
					continue
				}
				c.Close()
			}
		}
		for _, s := range sinks {
			s.conn.Close()
		}
		return nil, fmt.Errorf("bind %s: %w", a, err)
	}
	return sinks, nil
}

// drain reads until the socket is closed, counting and discarding.
func (s *sink) drain() {
	pc := ipv4.NewPacketConn(s.conn)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		for _, m := range msgs[:max(n, 0)] { // n is -1 with an error
			s.datagrams++
			s.bytes += int64(m.N)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // a transient error (e.g. ICMP-reported); go on
		}
	}
}
