//go:build linux

// Package ebpf loads the small eBPF programs of the media anchor's kernel path: an
// assembler for the instructions (no compiler, no ELF), hash maps, a ring buffer read
// through its mapped memory, traffic-control attachment through TCX links, and the
// kernel's run-time statistics. It speaks to bpf(2) with raw system calls.
//
// It does not own what the programs do: package media builds its forwarding program with
// Asm. Everything here needs CAP_BPF and CAP_NET_ADMIN (or root) and Linux 6.6+ (TCX);
// callers fall back to user space when New* or Attach* fail. Links are not pinned: when
// the process ends, for whatever reason, the kernel detaches its programs and frees its
// maps.
package ebpf
