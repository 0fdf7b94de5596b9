// Command trackline-busy keeps one thread busy for a share of the time, as another tenant of
// a shared machine would: busy for -on, asleep for -off, over and over, until -for has
// passed or SIGTERM or SIGINT. scripts/bench-sip.sh runs it beside a run (BUSY) to measure
// the switch on a busier machine, the case that its overload control must hold in as well
// (docs/benchmarks.md, "One more P for the collector"). At its end it prints the CPU time it
// used and its share of the wall time:
//
//	busy 30.01 s of CPU in 60.00 s (50.0 %)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/trackline/trackline/internal/cputime"
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trackline-busy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	on := fs.Duration("on", 10*time.Millisecond, "busy for this long in each period")
	off := fs.Duration("off", 10*time.Millisecond, "then asleep for this long")
	total := fs.Duration("for", time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *on <= 0 || *off < 0 || *total <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "trackline-busy: want -on > 0, -off >= 0, -for > 0 and no arguments")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *total)
	defer cancel()

	runtime.LockOSThread() // one thread, as one tenant's process
	start, cpu0 := time.Now(), cputime.Process()
	spin(ctx, *on, *off)
	wall, used := time.Since(start), cputime.Process()-cpu0
	fmt.Fprintf(stdout, "busy %.2f s of CPU in %.2f s (%.1f %%)\n", used.Seconds(), wall.Seconds(), 100*used.Seconds()/wall.Seconds())
	return 0
}

// spin alternates on busy and off asleep until ctx ends.
func spin(ctx context.Context, on, off time.Duration) {
	var sum uint64
	for ctx.Err() == nil {
		until := time.Now().Add(on)
		for time.Now().Before(until) {
			for i := range uint64(1000) {
				sum += i * i
			}
		}
		if off > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(off):
			}
		}
	}
	runtime.KeepAlive(sum) // the busy loop's work is used
}
