package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "trackline-mediaload:", err)
		}
		return 2
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sipmsg.SetDefaultLogger(log) // process-wide; this is main

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.deadline)
	defer cancel()

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "trackline-mediaload:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "trackline-mediaload:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := run(ctx, cfg, log)
	if rep != nil {
		if cfg.json {
			json.NewEncoder(stdout).Encode(rep)
		} else {
			rep.print(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "trackline-mediaload:", err)
		return 1
	}
	return 0
}

// config is the parsed command line.
type config struct {
	switchAddr netip.AddrPort
	listen     netip.AddrPort
	bind       netip.Addr
	calls      int
	duration   time.Duration
	settle     time.Duration
	grace      time.Duration
	setupRate  float64
	numbers    []string
	ring       time.Duration
	loops      int
	tick       time.Duration
	deadline   time.Duration
	switchPID  int
	metricsURL string
	relay      netip.AddrPort // a bare relay's first port: no SIP (see rampDirect)
	json       bool
	verbose    bool
	cpuProfile string
	rtPrio     int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("trackline-mediaload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: trackline-mediaload [flags]\n\n"+
			"Places -calls calls through the switch as the trunk, answers them as the business line, sends\n"+
			"50 packets/s of PCMU each way for -duration once all are up, and reports loss, added latency\n"+
			"and CPU. Loopback only.\n\nflags:")
		fs.PrintDefaults()
	}
	var c config
	sw := fs.String("switch", "127.0.0.1:5060", "the switch's SIP address (UDP)")
	listen := fs.String("listen", "127.0.0.1:5090", "the business line's SIP address (the switch rings it there)")
	bind := fs.String("bind", "127.0.0.1", "the trunk's address for SIP and RTP")
	relay := fs.String("relay", "", "ADDR:FIRST of scripts/bare-relay.c instead of a switch: no SIP; call i's trunk side sends to port FIRST+4i, its line side to FIRST+4i+2")
	fs.IntVar(&c.calls, "calls", 100, "concurrent calls")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "the measuring window: media time once every call is up")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "wait between the last call up and the window")
	fs.DurationVar(&c.grace, "grace", time.Second, "wait for stragglers after the window")
	fs.Float64Var(&c.setupRate, "setup-rate", 100, "calls per second while ramping up (and BYEs per second after)")
	numbers := fs.String("numbers", "", "dialled numbers, comma-separated, used in turn (overrides -number-first)")
	first := fs.String("number-first", "+31850000001", "first dialled number")
	count := fs.Int("number-count", 1, "dialled numbers from -number-first on, used in turn")
	fs.DurationVar(&c.ring, "ring", 0, "the line sends 180 and rings this long before answering (0: answers at once)")
	fs.IntVar(&c.loops, "loops", 1, "media loops, each on its own OS thread, sending and receiving a share of the streams")
	fs.IntVar(&c.rtPrio, "rt-priority", 0, "SCHED_FIFO priority (1-99) of the media loops' threads, so that a busy machine does not hold back their sends (0: none; below the switch's own, which takes the cores first)")
	fs.DurationVar(&c.tick, "tick", time.Millisecond, "pacing step within each 20 ms slot")
	fs.DurationVar(&c.deadline, "deadline", 0, "bound on the whole run (0: duration + 120 s + twice calls/setup-rate)")
	fs.IntVar(&c.switchPID, "switch-pid", 0, "the switch's PID: report its CPU over the window (/proc/PID/stat)")
	fs.StringVar(&c.metricsURL, "switch-metrics", "", "the switch's /metrics URL: report allocations per relayed packet over the window")
	fs.BoolVar(&c.json, "json", false, "print the report as one JSON object")
	fs.BoolVar(&c.verbose, "v", false, "log progress (info level) on stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile (runtime/pprof) to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.switchAddr, err = loopbackAddrPort("-switch", *sw); err != nil {
		return c, err
	}
	if c.listen, err = loopbackAddrPort("-listen", *listen); err != nil {
		return c, err
	}
	if *relay != "" {
		if c.relay, err = loopbackAddrPort("-relay", *relay); err != nil {
			return c, err
		}
	}
	if c.bind, err = netip.ParseAddr(*bind); err != nil || !c.bind.Is4() || !c.bind.IsLoopback() {
		return c, fmt.Errorf("-bind %q: want an IPv4 loopback address", *bind)
	}
	switch {
	case c.calls < 1 || c.calls > 99_999_999:
		return c, errors.New("-calls: want 1 or more")
	case c.duration < time.Second:
		return c, errors.New("-duration: want at least 1s")
	case c.settle < 0 || c.grace < 0 || c.ring < 0:
		return c, errors.New("-settle, -grace, -ring: want 0 or more")
	case c.setupRate <= 0:
		return c, errors.New("-setup-rate: want more than 0")
	case c.loops < 1 || c.loops > 16:
		return c, errors.New("-loops: want 1 to 16")
	case c.rtPrio < 0 || c.rtPrio > 99:
		return c, errors.New("-rt-priority: want 0 to 99")
	case c.tick < 100*time.Microsecond || c.tick > slotDur:
		return c, errors.New("-tick: want 100µs to 20ms")
	case c.deadline < 0:
		return c, errors.New("-deadline: want 0 or more")
	case c.relay.IsValid() && int(c.relay.Port())+4*c.calls > 65535:
		return c, errors.New("-relay: the calls' ports do not fit below 65536")
	}
	if *numbers != "" {
		for n := range strings.SplitSeq(*numbers, ",") {
			if n = strings.TrimSpace(n); n != "" {
				c.numbers = append(c.numbers, n)
			}
		}
	} else if c.numbers, err = numberRange(*first, *count); err != nil {
		return c, err
	}
	if len(c.numbers) == 0 {
		return c, errors.New("no dialled numbers")
	}
	for _, n := range c.numbers {
		if strings.ContainsAny(n, "\r\n@:;<> ") {
			return c, fmt.Errorf("dialled number %q: not a SIP user", n)
		}
	}
	if c.metricsURL != "" {
		u, err := url.Parse(c.metricsURL)
		if err != nil || u.Scheme != "http" {
			return c, fmt.Errorf("-switch-metrics %q: want an http URL", c.metricsURL)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); (err != nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
			return c, fmt.Errorf("-switch-metrics %q: want a loopback host", c.metricsURL)
		}
	}
	if c.deadline == 0 {
		ramp := time.Duration(float64(c.calls) / c.setupRate * float64(time.Second))
		c.deadline = c.duration + 120*time.Second + 2*ramp
	}
	return c, nil
}

func loopbackAddrPort(name, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().Is4() || !ap.Addr().IsLoopback() {
		return ap, fmt.Errorf("%s %q: want an IPv4 loopback address:port", name, s)
	}
	return ap, nil
}

// numberRange is count numbers from first on ("+31850000001", 3: ...01, ...02, ...03),
// keeping first's width.
func numberRange(first string, count int) ([]string, error) {
	digits := strings.TrimPrefix(first, "+")
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || digits == "" || count < 1 {
		return nil, fmt.Errorf("-number-first %q -number-count %d: want digits (after an optional +) and a count of 1 or more", first, count)
	}
	prefix := first[:len(first)-len(digits)]
	out := make([]string, count)
	for i := range out {
		v := strconv.FormatUint(n+uint64(i), 10)
		if len(v) < len(digits) {
			v = strings.Repeat("0", len(digits)-len(v)) + v
		}
		out[i] = prefix + v
	}
	return out, nil
}
