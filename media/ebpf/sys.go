//go:build linux

package ebpf

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpf(2) commands and constants (include/uapi/linux/bpf.h).
const (
	cmdMapCreate      = 0
	cmdMapUpdateElem  = 2
	cmdMapDeleteElem  = 3
	cmdProgLoad       = 5
	cmdProgTestRun    = 10
	cmdObjGetInfoByFD = 15
	cmdLinkCreate     = 28
	cmdEnableStats    = 32

	mapTypeHash    = 1
	mapTypeRingbuf = 27

	progTypeSchedCLS = 3
	attachTCXIngress = 46

	statsRunTime = 0

	// Offsets in struct bpf_prog_info.
	infoRunTimeNS = 192
	infoRunCnt    = 200
	infoSize      = 232
)

// attr is union bpf_attr: large enough for every command used here, zero beyond what each sets.
type attr [144]byte

func (a *attr) u32(off int, v uint32) { *(*uint32)(unsafe.Pointer(&a[off])) = v }
func (a *attr) u64(off int, v uint64) { *(*uint64)(unsafe.Pointer(&a[off])) = v }

func bpf(cmd int, a *attr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(a)), unsafe.Sizeof(*a))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Map is a BPF map's descriptor.
type Map struct {
	fd                  int
	keySize, valueSize  int
	maxEntries, mapType uint32
}

// FD returns the map's descriptor, for Asm.LoadMap.
func (m *Map) FD() int { return m.fd }

// NewHash creates a hash map.
func NewHash(name string, keySize, valueSize, maxEntries int) (*Map, error) {
	return newMap(name, mapTypeHash, keySize, valueSize, maxEntries)
}

func newMap(name string, typ uint32, keySize, valueSize, maxEntries int) (*Map, error) {
	var a attr
	a.u32(0, typ)
	a.u32(4, uint32(keySize))
	a.u32(8, uint32(valueSize))
	a.u32(12, uint32(maxEntries))
	copy(a[28:44], name) // map_name
	fd, err := bpf(cmdMapCreate, &a)
	if err != nil {
		return nil, fmt.Errorf("ebpf: create map %s: %w", name, err)
	}
	return &Map{fd: fd, keySize: keySize, valueSize: valueSize, maxEntries: uint32(maxEntries), mapType: typ}, nil
}

// Update sets key to value (both exactly the map's sizes).
func (m *Map) Update(key, value []byte) error {
	if len(key) != m.keySize || len(value) != m.valueSize {
		return fmt.Errorf("ebpf: map update with %d/%d bytes, want %d/%d", len(key), len(value), m.keySize, m.valueSize)
	}
	var a attr
	a.u32(0, uint32(m.fd))
	a.u64(8, uint64(uintptr(unsafe.Pointer(&key[0]))))
	a.u64(16, uint64(uintptr(unsafe.Pointer(&value[0]))))
	_, err := bpf(cmdMapUpdateElem, &a)
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return err
}

// Delete removes key; a key that is not there is no error.
func (m *Map) Delete(key []byte) error {
	if len(key) != m.keySize {
		return fmt.Errorf("ebpf: map delete with a %d-byte key, want %d", len(key), m.keySize)
	}
	var a attr
	a.u32(0, uint32(m.fd))
	a.u64(8, uint64(uintptr(unsafe.Pointer(&key[0]))))
	_, err := bpf(cmdMapDeleteElem, &a)
	runtime.KeepAlive(key)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// Close releases the map (the kernel frees it once no program holds it either).
func (m *Map) Close() error {
	if m == nil || m.fd < 0 {
		return nil
	}
	err := unix.Close(m.fd)
	m.fd = -1
	return err
}

// Prog is a loaded program's descriptor.
type Prog struct{ fd int }

// LoadTC loads a traffic-control classifier (attached with AttachTCXIngress). A program the
// verifier refuses comes back with the verifier's log in the error.
func LoadTC(name string, insns []Insn) (*Prog, error) {
	if len(insns) == 0 {
		return nil, errors.New("ebpf: empty program")
	}
	fd, err := loadProg(name, insns, nil)
	if err != nil {
		log := make([]byte, 1<<20)
		if _, err2 := loadProg(name, insns, log); err2 != nil { // again, for the verifier's reasons
			if i := bytes.IndexByte(log, 0); i >= 0 {
				log = log[:i]
			}
			if len(log) > 4096 {
				log = log[len(log)-4096:]
			}
			return nil, fmt.Errorf("ebpf: load program %s: %w\n%s", name, err, log)
		}
		return nil, fmt.Errorf("ebpf: load program %s: %w", name, err)
	}
	return &Prog{fd: fd}, nil
}

// loadProg is BPF_PROG_LOAD, with the verifier's log in log when it is not nil. The
// verifier gives up with EAGAIN when a signal arrives (the Go runtime preempts threads with
// SIGURG), so that is retried.
func loadProg(name string, insns []Insn, log []byte) (int, error) {
	license := []byte("GPL\x00")
	var a attr
	a.u32(0, progTypeSchedCLS)
	a.u32(4, uint32(len(insns)))
	a.u64(8, uint64(uintptr(unsafe.Pointer(&insns[0]))))
	a.u64(16, uint64(uintptr(unsafe.Pointer(&license[0]))))
	if log != nil {
		a.u32(24, 1) // log_level
		a.u32(28, uint32(len(log)))
		a.u64(32, uint64(uintptr(unsafe.Pointer(&log[0]))))
	}
	copy(a[48:64], name) // prog_name
	var fd int
	var err error
	for range 10 {
		if fd, err = bpf(cmdProgLoad, &a); !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	return fd, err
}

// Stats returns the program's run count and the total time it has run, in nanoseconds.
// The kernel counts only while some process holds EnableStats's descriptor.
func (p *Prog) Stats() (runs, ns uint64, err error) {
	var info [infoSize]byte
	var a attr
	a.u32(0, uint32(p.fd))
	a.u32(4, infoSize)
	a.u64(8, uint64(uintptr(unsafe.Pointer(&info[0]))))
	if _, err := bpf(cmdObjGetInfoByFD, &a); err != nil {
		return 0, 0, fmt.Errorf("ebpf: program info: %w", err)
	}
	ns = *(*uint64)(unsafe.Pointer(&info[infoRunTimeNS]))
	runs = *(*uint64)(unsafe.Pointer(&info[infoRunCnt]))
	return runs, ns, nil
}

// Close unloads the program once no link holds it.
func (p *Prog) Close() error {
	if p == nil || p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	return err
}

// Link is an attachment; closing it detaches the program. It is not pinned, so a process
// that dies leaves nothing attached.
type Link struct{ fd int }

// AttachTCXIngress attaches p to the ingress of the interface with index ifindex, after
// whatever is attached there already (TCX, Linux 6.6+).
func AttachTCXIngress(p *Prog, ifindex int) (*Link, error) {
	var a attr
	a.u32(0, uint32(p.fd))
	a.u32(4, uint32(ifindex))
	a.u32(8, attachTCXIngress)
	fd, err := bpf(cmdLinkCreate, &a)
	if err != nil {
		return nil, fmt.Errorf("ebpf: attach to ingress of interface %d: %w", ifindex, err)
	}
	return &Link{fd: fd}, nil
}

// Close detaches the program.
func (l *Link) Close() error {
	if l == nil || l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	return err
}

// EnableStats makes the kernel count every program's runs and run time until the returned
// descriptor is closed (it costs two clock reads per run).
func EnableStats() (int, error) {
	var a attr
	a.u32(0, statsRunTime)
	fd, err := bpf(cmdEnableStats, &a)
	if err != nil {
		return -1, fmt.Errorf("ebpf: enable run-time statistics: %w", err)
	}
	return fd, nil
}

// TestRun runs p once on the frame in (an Ethernet frame for a TC program) without a
// device, and returns the program's result and the frame as the program left it
// (BPF_PROG_TEST_RUN).
func (p *Prog) TestRun(in []byte) (ret uint32, out []byte, err error) {
	out = make([]byte, len(in)+256)
	var a attr
	a.u32(0, uint32(p.fd))
	a.u32(8, uint32(len(in)))
	a.u32(12, uint32(len(out)))
	a.u64(16, uint64(uintptr(unsafe.Pointer(&in[0]))))
	a.u64(24, uint64(uintptr(unsafe.Pointer(&out[0]))))
	a.u32(32, 1) // repeat
	_, err = bpf(cmdProgTestRun, &a)
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	if err != nil {
		return 0, nil, fmt.Errorf("ebpf: test run: %w", err)
	}
	ret = *(*uint32)(unsafe.Pointer(&a[4]))
	n := *(*uint32)(unsafe.Pointer(&a[12]))
	return ret, out[:n], nil
}
