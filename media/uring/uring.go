//go:build linux

// Package uring is a minimal io_uring ring for a UDP packet loop: multishot recvmsg into a
// ring of provided buffers, sends straight from those buffers (on registered files, where
// the caller registers them), cancellation, and a wait that also runs the kernel's
// deferred work. It speaks to the kernel ABI with raw system calls (no cgo, no liburing)
// and allocates nothing per operation.
//
// A Ring belongs to one goroutine locked to one OS thread (runtime.LockOSThread): it is
// created with IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN, so only the
// thread that called New may submit or wait (the kernel answers others with EEXIST), and
// the completions of socket operations are produced only while that thread is in Enter or
// EnterTimeout. Nothing in the package is safe for concurrent use.
//
// Everything the kernel reads or writes after a call returns lives in memory the package
// mapped itself (rings, submission entries, the recvmsg header, destination addresses,
// provided buffers): never Go heap memory that the collector could free or a goroutine
// stack that could move. The one exception is the payload of Send and SendTo: the caller's
// slice must stay valid and unchanged until that send's completion arrives. Payloads taken
// from a BufRing (BufRing.Buf) meet that rule when the buffer is recycled only after the
// send completes.
//
// It needs Linux 6.1 or newer (DEFER_TASKRUN; multishot recvmsg is 6.0, provided buffer
// rings 5.19, SEND with a destination address 6.1). Available says whether the running
// kernel and its policy (kernel.io_uring_disabled, seccomp) allow it.
//
// Why not a library (issue 23): the Go io_uring libraries were compared for the above with no
// allocation per operation. The Go module proxy that this project's machines and CI use
// serves none of them (403, no version list), so none can be a dependency here; their public
// source was read instead. github.com/pawelgaczynski/giouring (a liburing port; go 1.20,
// last change seen 2023) has every operation and, measured on copies of its functions,
// 0 allocations per send-and-receive cycle, the same as this package. But its
// PrepareSendto sends from the slice header's address, not the data's. RegisterFilesSparse
// returns no error when the kernel refuses. Its setup parameters are unexported, so the
// completion queue cannot be sized (no IORING_SETUP_CQSIZE). And it leaves the buffers, the
// msghdr and the addresses to the caller. github.com/iceber/iouring-go (go 1.15) has no
// buffer select, multishot receive or buffer ring. It also allocates a closure, a UserData
// and a Result per request, and delivers them over channels from a goroutine of its own.
// github.com/godzie44/go-uring (go 1.17) has no recvmsg, buffer select, buffer ring or
// registered files, and takes each operation as a heap-allocated interface value.
// github.com/ii64/gouring (go 1.18) exports setup, submission entries, submit and wait only.
// Its registration helpers are unexported, and it has no multishot recvmsg or timed wait.
// The figures are in docs/benchmarks.md ("io_uring: why media/uring stays").
package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI constants (include/uapi/linux/io_uring.h).
const (
	setupCQSize       = 1 << 3
	setupSubmitAll    = 1 << 7
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13

	featSingleMMap = 1 << 0
	featNoDrop     = 1 << 1
	featExtArg     = 1 << 8

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	offSQRing = 0
	offSQEs   = 0x10000000

	registerProbe       = 8
	registerFilesUpdate = 6
	registerFiles2      = 13
	registerPbufRng     = 22
	rsrcRegisterSparse  = 1 << 0

	opNop         = 0
	opPollAdd     = 6
	opRecvMsg     = 10
	opAsyncCancel = 14
	opSend        = 26

	sqeFixedFile    = 1 << 0
	sqeBufferSelect = 1 << 5

	recvMultishot  = 1 << 1
	pollAddMulti   = 1 << 0
	cancelAll      = 1 << 0
	cancelFD       = 1 << 1
	cqeFBuffer     = 1 << 0
	cqeFMore       = 1 << 1
	cqeBufferShift = 16
)

// sqe is struct io_uring_sqe (64 bytes), with the union members this package uses.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64 // addr2: SEND's destination address
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags, cancel_flags, poll32_events
	userData    uint64
	bufGroup    uint16
	personality uint16
	addrLen     uint16 // SEND's destination address length
	pad3        uint16
	addr3       uint64
	pad2        uint64
}

// cqe is struct io_uring_cqe (16 bytes; the ring is not set up with CQE32).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// sqringOffsets is struct io_sqring_offsets.
type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets.
type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params.
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	pad       uint32
	ts        uint64
}

// Compile-time checks of the ABI sizes.
var (
	_ [64 - unsafe.Sizeof(sqe{})]struct{}
	_ [unsafe.Sizeof(sqe{}) - 64]struct{}
	_ [16 - unsafe.Sizeof(cqe{})]struct{}
	_ [120 - unsafe.Sizeof(params{})]struct{}
	_ [unsafe.Sizeof(params{}) - 120]struct{}
	_ [24 - unsafe.Sizeof(getEventsArg{})]struct{}
	_ [32 - unsafe.Sizeof(rsrcRegister{})]struct{}
	_ [16 - unsafe.Sizeof(filesUpdate{})]struct{}
)

// NameLen is the room for the source address that a multishot receive reserves in each
// buffer (msg_namelen, the size of an IPv4 struct sockaddr_in).
const NameLen = unix.SizeofSockaddrInet4

// scratch is the ring's own memory for what the kernel reads from user space: the recvmsg
// header of multishot receives and one destination address per submission slot.
type scratch struct {
	msg unix.Msghdr
	_   [64 - unsafe.Sizeof(unix.Msghdr{})]byte
	// followed by one unix.RawSockaddrInet4 per submission queue entry
}

// Ring is an io_uring instance: a submission queue, a completion queue and the provided
// buffer rings registered with it. See the package comment for the threading rule.
type Ring struct {
	fd       int
	ringMem  []byte // SQ and CQ rings (IORING_FEAT_SINGLE_MMAP)
	sqeMem   []byte
	scratchM []byte
	bufRings []*BufRing

	// Submission queue.
	sqHead    *uint32 // written by the kernel
	sqTail    *uint32 // written here (release)
	sqMask    uint32
	sqEntries uint32
	sqes      []sqe
	sqeTail   uint32 // next entry to fill
	addrs     []unix.RawSockaddrInet4
	msg       *unix.Msghdr

	// Completion queue.
	cqHead      *uint32 // written here (release)
	cqTail      *uint32 // written by the kernel
	cqOverflow  *uint32
	cqMask      uint32
	cqes        []cqe
	cqLocalHead uint32 // next entry to read
	cqSeenTail  uint32 // last tail read from the kernel

	features uint32
	files    int          // registered file slots
	fileArg  int32        // SetFile's descriptor, read by the kernel during the call (heap memory)
	arg      getEventsArg // EnterTimeout's argument, read by the kernel during the call
	ts       unix.Timespec

	keep unsafe.Pointer // the last send payload: makes payloads escape to the heap (see Send)
}

// Errors.
var (
	// ErrSQFull is returned by a prep method when the submission queue stays full after a
	// submit (the kernel refused new work, e.g. with EBUSY while completions pile up).
	ErrSQFull = errors.New("uring: submission queue full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("uring: ring closed")
)

func setup(entries uint32, p *params) (int, unix.Errno) {
	fd, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	return int(fd), e
}

// register is io_uring_register(2); it returns the call's result and errno.
func register(fd int, op uint32, arg unsafe.Pointer, n uint32) (int, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(op), uintptr(arg), uintptr(n), 0, 0)
	return int(r), e
}

// New creates a ring with room for entries submissions (rounded up to a power of two by
// the kernel) and cqEntries completions (at least entries; 0 means twice entries). The
// calling goroutine must be locked to its thread, and every later call except Close must
// come from that thread.
func New(entries, cqEntries uint32) (*Ring, error) {
	if entries == 0 {
		return nil, fmt.Errorf("uring: entries must be positive")
	}
	if cqEntries == 0 {
		cqEntries = 2 * entries
	}
	if cqEntries < entries {
		return nil, fmt.Errorf("uring: %d completion entries for %d submission entries", cqEntries, entries)
	}
	p := params{
		flags:     setupSingleIssuer | setupDeferTaskrun | setupCQSize | setupSubmitAll,
		cqEntries: cqEntries,
	}
	fd, e := setup(entries, &p)
	if e != 0 {
		return nil, setupError(e)
	}
	r := &Ring{fd: fd, features: p.features}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func setupError(e unix.Errno) error {
	switch e {
	case unix.ENOSYS:
		return fmt.Errorf("uring: io_uring_setup: %w (kernel built without io_uring)", e)
	case unix.EPERM, unix.EACCES:
		return fmt.Errorf("uring: io_uring_setup: %w (io_uring disabled: sysctl kernel.io_uring_disabled, seccomp or container policy)", e)
	case unix.EINVAL:
		return fmt.Errorf("uring: io_uring_setup: %w (sizes out of range, or a kernel older than 6.1 without IORING_SETUP_DEFER_TASKRUN)", e)
	}
	return fmt.Errorf("uring: io_uring_setup: %w", e)
}

func (r *Ring) mmap(p *params) error {
	if p.features&featSingleMMap == 0 || p.features&featNoDrop == 0 {
		return fmt.Errorf("uring: kernel lacks IORING_FEAT_SINGLE_MMAP or IORING_FEAT_NODROP")
	}
	size := max(uintptr(p.sqOff.array)+uintptr(p.sqEntries)*4, uintptr(p.cqOff.cqes)+uintptr(p.cqEntries)*unsafe.Sizeof(cqe{}))
	mem, err := unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("uring: mmap rings: %w", err)
	}
	r.ringMem = mem
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("uring: mmap submission entries: %w", err)
	}
	scratchSize := int(unsafe.Sizeof(scratch{})) + int(p.sqEntries)*unix.SizeofSockaddrInet4
	if r.scratchM, err = anonMap(scratchSize); err != nil {
		return err
	}

	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = u32(p.sqOff.head), u32(p.sqOff.tail)
	r.sqMask, r.sqEntries = *u32(p.sqOff.ringMask), *u32(p.sqOff.ringEntries)
	r.cqHead, r.cqTail, r.cqOverflow = u32(p.cqOff.head), u32(p.cqOff.tail), u32(p.cqOff.overflow)
	r.cqMask = *u32(p.cqOff.ringMask)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&mem[p.cqOff.cqes])), p.cqEntries)
	// Submission slot i always goes with entry i: the index array never changes.
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.cqLocalHead = atomic.LoadUint32(r.cqHead)
	r.cqSeenTail = r.cqLocalHead

	sc := (*scratch)(unsafe.Pointer(&r.scratchM[0]))
	r.msg = &sc.msg
	r.msg.Namelen = NameLen // no iovec (the buffer comes from the group), no control data
	r.addrs = unsafe.Slice((*unix.RawSockaddrInet4)(unsafe.Pointer(&r.scratchM[unsafe.Sizeof(scratch{})])), p.sqEntries)
	return nil
}

// anonMap maps size bytes of private anonymous memory, outside the Go heap.
func anonMap(size int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap %d bytes: %w", size, err)
	}
	return b, nil
}

// Close releases the ring and its buffer rings: the kernel cancels what is still in
// flight, and the memory shared with it is unmapped. Closing the ring's descriptor first
// makes the kernel stop touching that memory before it goes. Close may be called from any
// goroutine once the ring's own goroutine no longer uses it; calling it again does
// nothing. The Ring's methods then return ErrClosed or nothing, and its BufRings must not
// be used.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	for _, m := range [][]byte{r.ringMem, r.sqeMem, r.scratchM} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.ringMem, r.sqeMem, r.scratchM = nil, nil, nil
	r.sqes, r.cqes, r.addrs, r.msg = nil, nil, nil, nil
	r.sqHead, r.sqTail, r.cqHead, r.cqTail, r.cqOverflow = nil, nil, nil, nil, nil
	r.cqSeenTail = r.cqLocalHead // Next finds nothing more
	for _, b := range r.bufRings {
		b.unmap()
	}
	r.bufRings = nil
	return err
}

// FD is the ring's file descriptor.
func (r *Ring) FD() int { return r.fd }

// Overflow is the number of completions the kernel could not keep (the CQ ring's overflow
// counter). With IORING_FEAT_NODROP it stays 0: the kernel holds completions that do not
// fit and posts them when the ring has room again.
func (r *Ring) Overflow() uint32 {
	if r.fd < 0 {
		return 0
	}
	return atomic.LoadUint32(r.cqOverflow)
}

// getSQE returns the next free submission entry, zeroed, submitting what the queue holds
// first when it is full.
func (r *Ring) getSQE() (*sqe, uint32, error) {
	if r.fd < 0 {
		return nil, 0, ErrClosed
	}
	if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		if _, err := r.Submit(); err != nil {
			return nil, 0, err
		}
		if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
			return nil, 0, ErrSQFull
		}
	}
	i := r.sqeTail & r.sqMask
	s := &r.sqes[i]
	*s = sqe{}
	r.sqeTail++
	return s, i, nil
}

// Pending is the number of prepared submissions the kernel has not taken yet.
func (r *Ring) Pending() uint32 {
	if r.fd < 0 {
		return 0
	}
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// flush publishes the prepared submissions and the consumed completions to the kernel.
func (r *Ring) flush() uint32 {
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	atomic.StoreUint32(r.cqHead, r.cqLocalHead)
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

func (r *Ring) enter(toSubmit, waitNr, flags uint32, arg unsafe.Pointer, argSz uintptr) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(waitNr),
		uintptr(flags), uintptr(arg), argSz)
	return e
}

// result turns io_uring_enter's outcome into the number of submissions the kernel took
// and an error. EINTR (a signal, e.g. the Go scheduler's preemption) and ETIME (the
// timeout) are no errors: the caller looks at the completions and calls again. EBUSY (or
// EAGAIN) means that the kernel holds completions the queue had no room for: the caller
// consumes completions with Next and calls again.
func (r *Ring) result(before uint32, e unix.Errno) (int, error) {
	n := int(before - (r.sqeTail - atomic.LoadUint32(r.sqHead)))
	switch e {
	case 0, unix.EINTR, unix.ETIME:
		return n, nil
	}
	return n, fmt.Errorf("uring: io_uring_enter: %w", e)
}

// Submit hands the prepared submissions to the kernel without waiting and returns how
// many it took. With DEFER_TASKRUN it does not run the kernel's deferred completion work:
// completions of socket operations then wait for the next Enter.
func (r *Ring) Submit() (int, error) {
	if r.fd < 0 {
		return 0, ErrClosed
	}
	before := r.flush()
	if before == 0 {
		return 0, nil
	}
	return r.result(before, r.enter(before, 0, 0, nil, 0))
}

// Enter submits the prepared submissions, runs the kernel's deferred work (the receives
// and sends that became ready), and waits until at least waitNr completions are in the
// completion queue. Enter(0) never sleeps. It returns how many submissions the kernel
// took.
//
// A signal ends the wait early with no error, so the goroutine reaches a preemption
// point: the call is a raw system call that keeps the goroutine's P (as the packet loop's
// epoll_wait does), and the Go runtime interrupts it with a signal when it needs the P.
func (r *Ring) Enter(waitNr uint32) (int, error) {
	if r.fd < 0 {
		return 0, ErrClosed
	}
	before := r.flush()
	return r.result(before, r.enter(before, waitNr, enterGetEvents, nil, 0))
}

// EnterTimeout is Enter with a wait of at most d (IORING_ENTER_EXT_ARG; kernels since
// 5.11 have it). The timeout ends the wait with no error.
func (r *Ring) EnterTimeout(waitNr uint32, d time.Duration) (int, error) {
	if r.fd < 0 {
		return 0, ErrClosed
	}
	if r.features&featExtArg == 0 {
		return 0, fmt.Errorf("uring: kernel lacks IORING_FEAT_EXT_ARG")
	}
	before := r.flush()
	r.ts = unix.NsecToTimespec(max(int64(d), 0))
	r.arg = getEventsArg{sigmaskSz: 8, ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
	return r.result(before, r.enter(before, waitNr, enterGetEvents|enterExtArg, unsafe.Pointer(&r.arg), unsafe.Sizeof(r.arg)))
}

// CQE is one completion.
type CQE struct {
	UserData uint64 // the submission's user data
	Res      int32  // its result: a byte count, a count, or a negated errno
	Flags    uint32 // IORING_CQE_F_*
}

// More says whether the submission will post more completions (IORING_CQE_F_MORE): a
// multishot receive without it has ended and must be armed again to go on receiving.
func (c CQE) More() bool { return c.Flags&cqeFMore != 0 }

// Buffer returns the provided buffer the completion used, if it used one
// (IORING_CQE_F_BUFFER; the id is in the upper 16 bits of the flags).
func (c CQE) Buffer() (bid uint16, ok bool) {
	return uint16(c.Flags >> cqeBufferShift), c.Flags&cqeFBuffer != 0
}

// Err is the completion's error: nil if Res is not negative, else the errno.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}

// Next returns the oldest completion not yet consumed and consumes it; false when the
// queue is empty. The consumed entries are handed back to the kernel (a release store of
// the CQ head) when Next finds the queue empty and before each Submit or Enter, so a
// loop that calls Next until false leaves nothing held.
func (r *Ring) Next() (CQE, bool) {
	if r.cqLocalHead == r.cqSeenTail {
		if r.fd < 0 {
			return CQE{}, false
		}
		r.cqSeenTail = atomic.LoadUint32(r.cqTail)
		if r.cqLocalHead == r.cqSeenTail {
			atomic.StoreUint32(r.cqHead, r.cqLocalHead)
			return CQE{}, false
		}
	}
	c := &r.cqes[r.cqLocalHead&r.cqMask]
	out := CQE{UserData: c.userData, Res: c.res, Flags: c.flags}
	r.cqLocalHead++
	return out, true
}

// Ready is the number of completions waiting in the queue.
func (r *Ring) Ready() uint32 {
	if r.fd < 0 {
		return 0
	}
	return atomic.LoadUint32(r.cqTail) - r.cqLocalHead
}

var availability struct {
	once sync.Once
	err  error
}

// Available reports whether this package works here: nil, or why not (the kernel lacks
// io_uring or the features used here, or io_uring is disabled by sysctl, seccomp or a
// container policy). It creates a ring, registers a buffer ring and runs a no-op through
// it, once per process; later calls return the first answer. A caller falls back to epoll
// on error.
func Available() error {
	availability.once.Do(func() { availability.err = probe() })
	return availability.err
}

func probe() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(4, 8)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.probeOps(opRecvMsg, opSend, opAsyncCancel, opPollAdd); err != nil {
		return err
	}
	if _, err := r.RegisterBufRing(0, 2, 64); err != nil {
		return err
	}
	if err := r.Nop(1); err != nil {
		return err
	}
	if _, err := r.EnterTimeout(1, time.Second); err != nil {
		return err
	}
	c, ok := r.Next()
	if !ok || c.UserData != 1 || c.Res != 0 {
		return fmt.Errorf("uring: a no-op did not complete (%v %+v)", ok, c)
	}
	return nil
}

// probeOps checks with IORING_REGISTER_PROBE that the kernel supports the opcodes.
func (r *Ring) probeOps(ops ...uint8) error {
	const nOps = 64
	var buf struct {
		lastOp, opsLen uint8
		resv           uint16
		resv2          [3]uint32
		ops            [nOps]struct {
			op, resv uint8
			flags    uint16
			resv2    uint32
		}
	}
	if _, e := register(r.fd, registerProbe, unsafe.Pointer(&buf), nOps); e != 0 {
		return fmt.Errorf("uring: IORING_REGISTER_PROBE: %w", e)
	}
	for _, op := range ops {
		if int(op) >= int(buf.opsLen) || buf.ops[op].flags&1 == 0 {
			return fmt.Errorf("uring: kernel lacks io_uring opcode %d", op)
		}
	}
	return nil
}

// rsrcRegister is struct io_uring_rsrc_register.
type rsrcRegister struct {
	nr    uint32
	flags uint32
	resv2 uint64
	data  uint64
	tags  uint64
}

// filesUpdate is struct io_uring_files_update.
type filesUpdate struct {
	offset uint32
	resv   uint32
	fds    uint64
}

// RegisterFiles gives the ring a table of n registered files, all empty
// (IORING_REGISTER_FILES2 with IORING_RSRC_REGISTER_SPARSE, Linux 5.19+); SetFile fills
// its slots. The kernel refuses more slots than RLIMIT_NOFILE allows (EMFILE).
func (r *Ring) RegisterFiles(n int) error {
	if r.fd < 0 {
		return ErrClosed
	}
	if n <= 0 || n > 1<<20 {
		return fmt.Errorf("uring: %d registered files out of range", n)
	}
	arg := rsrcRegister{nr: uint32(n), flags: rsrcRegisterSparse}
	if _, e := register(r.fd, registerFiles2, unsafe.Pointer(&arg), uint32(unsafe.Sizeof(arg))); e != 0 {
		return fmt.Errorf("uring: register %d files: %w", n, e)
	}
	r.files = n
	return nil
}

// SetFile puts the descriptor fd in slot, or empties the slot with fd -1. The ring holds its
// own reference to a registered file: a socket stays open, and its port bound, until its
// slot is emptied and its descriptor closed, whichever comes last. Operations already
// submitted keep the file they were given.
func (r *Ring) SetFile(slot, fd int) error {
	if r.fd < 0 {
		return ErrClosed
	}
	if slot < 0 || slot >= r.files {
		return fmt.Errorf("uring: file slot %d outside the %d registered", slot, r.files)
	}
	r.fileArg = int32(fd)
	arg := filesUpdate{offset: uint32(slot), fds: uint64(uintptr(unsafe.Pointer(&r.fileArg)))}
	n, e := register(r.fd, registerFilesUpdate, unsafe.Pointer(&arg), 1)
	if e != 0 {
		return fmt.Errorf("uring: set file slot %d: %w", slot, e)
	}
	if n != 1 {
		return fmt.Errorf("uring: set file slot %d: the kernel updated %d slots", slot, n)
	}
	return nil
}
