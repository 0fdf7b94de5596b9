// Command trackline-webhookrecv is a webhook receiver for benchmarks (scripts/bench-sip.sh):
// an HTTP server on loopback that reads each request's body and answers 204 (-mode fast), or
// reads it and never answers until the client gives up (-mode hang). It verifies nothing: it
// stands for a receiver that costs as little as one can. On SIGINT or SIGTERM it prints how
// many requests it took and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("trackline-webhookrecv", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	mode := fs.String("mode", "fast", "fast: answer 204; hang: never answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *mode != "fast" && *mode != "hang" {
		fmt.Fprintln(os.Stderr, "trackline-webhookrecv: -mode must be fast or hang")
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackline-webhookrecv:", err)
		return 1
	}
	if ap, ok := ln.Addr().(*net.TCPAddr); !ok || !ap.IP.IsLoopback() {
		fmt.Fprintln(os.Stderr, "trackline-webhookrecv: listens on loopback only")
		return 2
	}
	var n atomic.Int64
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		if *mode == "hang" {
			<-r.Context().Done() // the client gave up, or the server stops
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	// The address on stdout, for the script that started it.
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "trackline-webhookrecv:", err)
		return 1
	}
	fmt.Printf("requests %d\n", n.Load())
	return 0
}
