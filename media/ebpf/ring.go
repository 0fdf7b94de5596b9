//go:build linux

package ebpf

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) read through its mapped memory: reading
// a record costs no system call. Programs fill it with bpf_ringbuf_reserve/submit; one
// goroutine at a time reads it with Read.
type Ring struct {
	*Map
	cons []byte // the consumer position's page, writable
	prod []byte // the producer position's page, then the data twice (mapped back to back)
	data []byte // the data area, 2 × size, so that a record never wraps
	mask uint64
}

// Ring record header bits (include/uapi/linux/bpf.h).
const (
	ringHdrSize    = 8
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
)

// NewRing creates a ring buffer of size bytes (a power of two, a multiple of the page size)
// and maps it.
func NewRing(name string, size int) (*Ring, error) {
	page := unix.Getpagesize()
	if size < page || size&(size-1) != 0 {
		return nil, fmt.Errorf("ebpf: ring size %d: want a power of two of at least %d", size, page)
	}
	m, err := newMap(name, mapTypeRingbuf, 0, 0, size)
	if err != nil {
		return nil, err
	}
	cons, err := unix.Mmap(m.fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("ebpf: map ring consumer page: %w", err)
	}
	prod, err := unix.Mmap(m.fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(cons)
		m.Close()
		return nil, fmt.Errorf("ebpf: map ring data: %w", err)
	}
	return &Ring{Map: m, cons: cons, prod: prod, data: prod[page:], mask: uint64(size - 1)}, nil
}

// Read hands each record submitted since the last Read to fn, in order, and returns how
// many it read. The slice is valid only during fn. It stops at a record still being
// written. It allocates nothing.
func (r *Ring) Read(fn func(rec []byte)) int {
	consPos := (*uint64)(unsafe.Pointer(&r.cons[0]))
	prodPos := (*uint64)(unsafe.Pointer(&r.prod[0]))
	c := atomic.LoadUint64(consPos)
	p := atomic.LoadUint64(prodPos)
	n := 0
	for c < p {
		hdr := (*uint32)(unsafe.Pointer(&r.data[c&r.mask]))
		l := atomic.LoadUint32(hdr)
		if l&ringBusyBit != 0 {
			break
		}
		size := uint64(l &^ (ringBusyBit | ringDiscardBit))
		if l&ringDiscardBit == 0 {
			at := c&r.mask + ringHdrSize
			fn(r.data[at : at+size])
			n++
		}
		c += (size + ringHdrSize + 7) &^ 7
		atomic.StoreUint64(consPos, c)
	}
	return n
}

// Close unmaps the ring and releases its map.
func (r *Ring) Close() error {
	if r == nil {
		return nil
	}
	if r.cons != nil {
		unix.Munmap(r.cons)
		unix.Munmap(r.prod)
		r.cons, r.prod, r.data = nil, nil, nil
	}
	return r.Map.Close()
}
