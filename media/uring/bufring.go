//go:build linux

package uring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bufEntry is struct io_uring_buf. The ring's tail (a uint16) overlays the resv field of
// entry 0.
type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

// bufRegister is struct io_uring_buf_reg.
type bufRegister struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// tailShift is where the ring tail sits in the 32-bit word that holds entry 0's bid and
// resv (the tail): sync/atomic has no 16-bit store, so the tail is published with a 32-bit
// store of that word, which writes entry 0's bid back unchanged.
var tailShift = func() uint32 {
	w := uint32(1)
	if *(*uint16)(unsafe.Pointer(&w)) == 1 {
		return 16 // little endian: bid in the low half, resv/tail in the high half
	}
	return 0
}()

// BufRing is a ring of provided buffers (IORING_REGISTER_PBUF_RING, Linux 5.19+) that
// receives with buffer select take their buffers from. Both the ring and the buffers are
// anonymous mappings outside the Go heap, owned by the Ring that registered them and
// unmapped by its Close.
//
// Every buffer is in the ring at the start. A completion that used buffer bid hands it to
// the program, which gives it back with Recycle (or Put and Publish) once done with it:
// after the send of its payload completed, if it was relayed. Each buffer must be given
// back exactly once.
type BufRing struct {
	bgid    uint16
	size    int
	mask    uint16
	tail    uint16 // local tail: Put advances it, Publish makes it the kernel's
	entries []bufEntry
	word    *uint32 // entry 0's bid and the ring tail
	ringM   []byte
	bufM    []byte
}

// RegisterBufRing creates a buffer ring of n buffers of size bytes each as buffer group
// bgid and registers it with the kernel. n must be a power of two up to 32768.
func (r *Ring) RegisterBufRing(bgid uint16, n, size int) (*BufRing, error) {
	if r.fd < 0 {
		return nil, ErrClosed
	}
	if n <= 0 || n > 1<<15 || n&(n-1) != 0 {
		return nil, fmt.Errorf("uring: buffer ring size %d is not a power of two up to 32768", n)
	}
	if size <= 0 || size > 1<<30 {
		return nil, fmt.Errorf("uring: buffer size %d out of range", size)
	}
	b := &BufRing{bgid: bgid, size: size, mask: uint16(n - 1)}
	var err error
	if b.ringM, err = anonMap(n * int(unsafe.Sizeof(bufEntry{}))); err != nil {
		return nil, err
	}
	if b.bufM, err = anonMap(n * size); err != nil {
		b.unmap()
		return nil, err
	}
	b.entries = unsafe.Slice((*bufEntry)(unsafe.Pointer(&b.ringM[0])), n)
	b.word = (*uint32)(unsafe.Pointer(&b.ringM[unsafe.Offsetof(bufEntry{}.bid)]))
	reg := bufRegister{
		ringAddr:    uint64(uintptr(unsafe.Pointer(&b.ringM[0]))),
		ringEntries: uint32(n),
		bgid:        bgid,
	}
	if _, e := register(r.fd, registerPbufRng, unsafe.Pointer(&reg), 1); e != 0 {
		b.unmap()
		return nil, fmt.Errorf("uring: IORING_REGISTER_PBUF_RING: %w", e)
	}
	for i := 0; i < n; i++ {
		b.Put(uint16(i))
	}
	b.Publish()
	r.bufRings = append(r.bufRings, b)
	return b, nil
}

func (b *BufRing) unmap() {
	if b.ringM != nil {
		unix.Munmap(b.ringM)
	}
	if b.bufM != nil {
		unix.Munmap(b.bufM)
	}
	b.ringM, b.bufM, b.entries, b.word = nil, nil, nil, nil
}

// Group is the ring's buffer group id.
func (b *BufRing) Group() uint16 { return b.bgid }

// Len is the number of buffers.
func (b *BufRing) Len() int { return len(b.entries) }

// Size is the size of each buffer.
func (b *BufRing) Size() int { return b.size }

// Buf is buffer bid, all of it (a completion's Res says how much of it was used). It
// aliases memory that the kernel writes while the buffer is in the ring.
func (b *BufRing) Buf(bid uint16) []byte {
	off := int(bid) * b.size
	return b.bufM[off : off+b.size : off+b.size]
}

// Put adds buffer bid to the ring without showing it to the kernel yet (see Publish).
func (b *BufRing) Put(bid uint16) {
	e := &b.entries[b.tail&b.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(&b.bufM[int(bid)*b.size])))
	e.len = uint32(b.size)
	e.bid = bid // resv is left alone: in entry 0 it is the tail
	b.tail++
}

// Publish hands the buffers added by Put to the kernel: a release store of the ring tail.
func (b *BufRing) Publish() {
	bid0 := uint32(b.entries[0].bid)
	atomic.StoreUint32(b.word, uint32(b.tail)<<tailShift|bid0<<(16-tailShift))
}

// Recycle gives buffer bid back to the kernel: Put and Publish.
func (b *BufRing) Recycle(bid uint16) {
	b.Put(bid)
	b.Publish()
}
