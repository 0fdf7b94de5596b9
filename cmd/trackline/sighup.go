package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// tlsReloader is what SIGHUP reloads: the SIP TLS certificate (sip.Switch.ReloadTLS).
type tlsReloader interface{ ReloadTLS() error }

// reloadTLSOnHUP reads the SIP TLS certificate, key and client CAs again on every SIGHUP
// until ctx ends (the same signal also toggles the log level: toggleDebugOnHUP). New TLS
// connections get the new certificate, calls in progress go on; a certificate that does not
// load, or is not valid now, is logged and the one in use stays. It catches SIGHUP before it
// returns; the returned function stops it.
func reloadTLSOnHUP(ctx context.Context, r tlsReloader, logger *slog.Logger) func() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-c:
			}
			if err := r.ReloadTLS(); err != nil {
				logger.Error("sip tls certificate not reloaded: the one in use stays", "by", "SIGHUP", "err", err)
			}
		}
	}()
	return func() {
		signal.Stop(c)
		cancel()
		<-done
	}
}
