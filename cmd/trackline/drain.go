package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// The operator's drain, by signal (docs/cluster.md): SIGUSR1 makes the SIP switch drain
// (503 with Retry-After to new INVITEs and to the dispatcher's OPTIONS pings, while the calls
// in progress go on), SIGUSR2 lifts it. The node keeps running and serving HTTP; a
// dispatcher in front (configs/kamailio) takes it out of service at its next ping and back
// in at the first ping after SIGUSR2. SIGTERM drains for good, then stops.

// drainer is the switch's operator drain (*sip.Switch).
type drainer interface {
	SetDraining(on bool) bool
}

// notifyDrain starts catching SIGUSR1 and SIGUSR2 (whose default ends the process) before
// anything runs.
func notifyDrain() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2)
	return c, func() { signal.Stop(c) }
}

// drainOnSignal sets the switch's drain on SIGUSR1 and lifts it on SIGUSR2, until ctx ends.
func drainOnSignal(ctx context.Context, sigs <-chan os.Signal, sw drainer, logger *slog.Logger) {
	for {
		var sig os.Signal
		select {
		case <-ctx.Done():
			return
		case sig = <-sigs:
		}
		want := sig == syscall.SIGUSR1
		if got := sw.SetDraining(want); got != want {
			logger.Warn("sip drain not lifted: the node is shutting down", "by", sig.String())
			continue
		}
		logger.Info("sip drain changed", "draining", want, "by", sig.String())
	}
}
