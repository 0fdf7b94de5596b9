// Package cputime reads the CPU time the process has used, for the switch's admission
// control (sip) and for the benchmarks and load tools that report CPU a call.
package cputime

import (
	"syscall"
	"time"
)

// Process is the CPU time (user and system) the process has used, all its threads
// (getrusage(2), RUSAGE_SELF); 0 when the kernel does not say.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
