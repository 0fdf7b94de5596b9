package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
)

// progFixture is the forwarding program loaded (not attached), with its table, and its
// ring read as the kernel path reads it (k.read).
type progFixture struct {
	flows *ebpf.Map
	prog  *ebpf.Program
	k     *kernelPath
}

// progRingSize holds 126 records.
const progRingSize = 1 << 16

func newProgFixture(t testing.TB) *progFixture {
	t.Helper()
	if err := kernelAvailable(); err != nil {
		t.Skipf("the kernel path cannot load here: %v", err)
	}
	coll, err := ebpf.NewCollection(kernelSpec(16, progRingSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coll.Close() })
	ring, err := newRingReader(coll.Maps[ringMap])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	return &progFixture{
		flows: coll.Maps[flowsMap],
		prog:  coll.Programs[forwardProg],
		k:     &kernelPath{ring: ring, rec: ringbuf.Record{RawSample: make([]byte, 0, recSize)}},
	}
}

// frame builds an Ethernet/IPv4/UDP/RTP frame with valid checksums (the UDP one left 0
// with noUDPSum).
func frame(src, dst [4]byte, sport, dport uint16, rtpHdr []byte, payload []byte, noUDPSum bool) []byte {
	udpLen := 8 + len(rtpHdr) + len(payload)
	b := make([]byte, 14+20+udpLen)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[10:], inetSum(ip, 0))
	u := b[34:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen))
	copy(u[8:], rtpHdr)
	copy(u[8+len(rtpHdr):], payload)
	if !noUDPSum {
		binary.BigEndian.PutUint16(u[6:], udpSum(b))
	}
	return b
}

// inetSum is the Internet checksum (RFC 1071) of b, starting from the partial sum sum.
func inetSum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udpSum is the UDP checksum of the frame, its checksum field counted as 0.
func udpSum(b []byte) uint16 {
	ip, u := b[14:34], append([]byte(nil), b[34:]...)
	u[6], u[7] = 0, 0
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum += 17 + uint32(len(u))
	s := inetSum(u, sum)
	if s == 0 {
		s = 0xffff
	}
	return s
}

func rtpHeader(b1 byte, seq uint16, ts, ssrc uint32) []byte {
	h := make([]byte, rtpHeaderLen)
	h[0], h[1] = 0x80, b1
	binary.BigEndian.PutUint16(h[2:], seq)
	binary.BigEndian.PutUint32(h[4:], ts)
	binary.BigEndian.PutUint32(h[8:], ssrc)
	return h
}

var (
	progPeerA  = [4]byte{127, 0, 0, 5}
	progAnchor = [4]byte{127, 0, 0, 1}
	progPeerB  = [4]byte{127, 0, 0, 6}
)

// putFlow installs the flow from peer A's port 4000 to the anchor's 20000, out from the
// anchor's 20002 to peer B's 5000.
func (f *progFixture) putFlow(t testing.TB, ssrcIn uint32, seqDelta uint16, tsDelta uint32, teIn, teOut uint8) {
	t.Helper()
	var key [flowKeySize]byte
	copy(key[0:], progPeerA[:])
	copy(key[4:], progAnchor[:])
	binary.BigEndian.PutUint16(key[8:], 4000)
	binary.BigEndian.PutUint16(key[10:], 20000)
	var v [flowValSize]byte
	copy(v[fvSaddr:], progAnchor[:])
	copy(v[fvDaddr:], progPeerB[:])
	binary.BigEndian.PutUint16(v[fvPorts:], 20002)
	binary.BigEndian.PutUint16(v[fvPorts+2:], 5000)
	binary.BigEndian.PutUint32(v[fvSSRCIn:], ssrcIn)
	binary.BigEndian.PutUint32(v[fvSSRCOut:], 0xabcdef01)
	binary.LittleEndian.PutUint32(v[fvSeqDelta:], uint32(seqDelta))
	binary.LittleEndian.PutUint32(v[fvTSDelta:], tsDelta)
	v[fvPTAudio], v[fvPTAudio+1] = 0, 0
	v[fvTEIn], v[fvTEIn+1] = teIn, teOut
	binary.LittleEndian.PutUint32(v[fvFlow:], 0x00070003)
	binary.LittleEndian.PutUint32(v[fvFlags:], flowLocal)
	if err := f.flows.Update(key[:], v[:], ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

func (f *progFixture) records() [][]byte {
	var out [][]byte
	f.k.onRecord = func(rec []byte) { out = append(out, append([]byte(nil), rec...)) }
	f.k.read()
	return out
}

// TestForwardProgramAssembles: every jump lands on a label defined once, and the program
// names only the maps kernelSpec makes (checked without loading it).
func TestForwardProgramAssembles(t *testing.T) {
	spec := kernelSpec(16, progRingSize)
	insns := spec.Programs[forwardProg].Instructions
	if err := insns.Marshal(io.Discard, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	for name := range insns.ReferenceOffsets() {
		if _, isMap := spec.Maps[name]; !isMap && !isLabel(insns, name) {
			t.Errorf("the program refers to %q, which is neither a map nor a label", name)
		}
	}
	for _, m := range []string{flowsMap, ringMap} {
		if _, ok := insns.ReferenceOffsets()[m]; !ok {
			t.Errorf("the program does not use map %s", m)
		}
	}
	bad := append(asm.Instructions{asm.Ja.Label("nowhere")}, insns...)
	if err := bad.Marshal(io.Discard, binary.LittleEndian); !errors.Is(err, asm.ErrUnsatisfiedProgramReference) {
		t.Errorf("a jump to an undefined label: %v", err)
	}
}

func isLabel(insns asm.Instructions, name string) bool {
	for _, ins := range insns {
		if ins.Symbol() == name {
			return true
		}
	}
	return false
}

// TestForwardProgramRewrites runs the program on frames (BPF_PROG_TEST_RUN): a flow's
// packet comes out as the relay would send it, with valid IP and UDP checksums, and its
// original goes to the ring; everything else passes unchanged and unrecorded.
func TestForwardProgramRewrites(t *testing.T) {
	f := newProgFixture(t)
	f.putFlow(t, 0x11223344, 3, 1000, 101, 96)
	audio := bytes.Repeat([]byte{0x55}, 160)

	for _, tc := range []struct {
		name     string
		b1       byte
		seq      uint16
		ts       uint32
		noUDPSum bool
		wantB1   byte
		wantSeq  uint16
		wantTS   uint32
	}{
		{name: "audio", b1: 0, seq: 100, ts: 8000, wantB1: 0, wantSeq: 103, wantTS: 9000},
		{name: "marker stays", b1: 0x80, seq: 101, ts: 8160, wantB1: 0x80, wantSeq: 104, wantTS: 9160},
		{name: "sequence and timestamp wrap", b1: 0, seq: 0xfffe, ts: 0xfffffe00, wantB1: 0, wantSeq: 1, wantTS: 0xfffffe00 + 1000 - 1<<32},
		{name: "telephone-event mapped", b1: 0x80 | 101, seq: 5, ts: 10, wantB1: 0x80 | 96, wantSeq: 8, wantTS: 1010},
		{name: "no UDP checksum stays none", b1: 0, seq: 7, ts: 70, noUDPSum: true, wantB1: 0, wantSeq: 10, wantTS: 1070},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := frame(progPeerA, progAnchor, 4000, 20000, rtpHeader(tc.b1, tc.seq, tc.ts, 0x11223344), audio, tc.noUDPSum)
			ret, out, err := f.prog.Test(in)
			if err != nil {
				t.Fatal(err)
			}
			if ret != tcxPass {
				t.Fatalf("returned %d, want TCX_PASS", int32(ret))
			}
			ip, u, r := out[14:34], out[34:42], out[42:]
			if !bytes.Equal(ip[12:16], progAnchor[:]) || !bytes.Equal(ip[16:20], progPeerB[:]) {
				t.Errorf("addresses %v -> %v", ip[12:16], ip[16:20])
			}
			if sp, dp := binary.BigEndian.Uint16(u), binary.BigEndian.Uint16(u[2:]); sp != 20002 || dp != 5000 {
				t.Errorf("ports %d -> %d", sp, dp)
			}
			if inetSum(ip, 0) != 0 {
				t.Error("IP header checksum is wrong")
			}
			switch got := binary.BigEndian.Uint16(u[6:]); {
			case tc.noUDPSum && got != 0:
				t.Errorf("UDP checksum %#04x, want none (0)", got)
			case !tc.noUDPSum && got != udpSum(out):
				t.Errorf("UDP checksum %#04x, want %#04x", got, udpSum(out))
			}
			b1, seq, ts, ssrc := r[1], binary.BigEndian.Uint16(r[2:]), binary.BigEndian.Uint32(r[4:]), binary.BigEndian.Uint32(r[8:])
			if r[0] != 0x80 || b1 != tc.wantB1 || seq != tc.wantSeq || ts != tc.wantTS || ssrc != 0xabcdef01 {
				t.Errorf("RTP %#02x %#02x seq %d ts %d ssrc %#x; want b1 %#02x seq %d ts %d ssrc 0xabcdef01",
					r[0], b1, seq, ts, ssrc, tc.wantB1, tc.wantSeq, tc.wantTS)
			}
			if !bytes.Equal(r[rtpHeaderLen:], audio) {
				t.Error("payload changed")
			}
			recs := f.records()
			if len(recs) != 1 {
				t.Fatalf("%d ring records, want 1", len(recs))
			}
			rec := recs[0]
			if tag, n := binary.LittleEndian.Uint32(rec), binary.LittleEndian.Uint32(rec[4:]); tag != 0x00070003 || n != 172 {
				t.Errorf("record tag %#x length %d", tag, n)
			}
			if !bytes.Equal(rec[recHeader:recHeader+172], in[42:]) {
				t.Error("the record is not the datagram as it arrived")
			}
		})
	}

	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"another SSRC", frame(progPeerA, progAnchor, 4000, 20000, rtpHeader(0, 1, 1, 0x99), audio, false)},
		{"another source port", frame(progPeerA, progAnchor, 4001, 20000, rtpHeader(0, 1, 1, 0x11223344), audio, false)},
		{"another source", frame([4]byte{127, 0, 0, 2}, progAnchor, 4000, 20000, rtpHeader(0, 1, 1, 0x11223344), audio, false)},
		{"unknown payload type", frame(progPeerA, progAnchor, 4000, 20000, rtpHeader(18, 1, 1, 0x11223344), audio, false)},
		{"CSRC count", frame(progPeerA, progAnchor, 4000, 20000, append([]byte{0x81}, rtpHeader(0, 1, 1, 0x11223344)[1:]...), audio, false)},
		{"RTP version 1", frame(progPeerA, progAnchor, 4000, 20000, append([]byte{0x40}, rtpHeader(0, 1, 1, 0x11223344)[1:]...), audio, false)},
		{"runt", frame(progPeerA, progAnchor, 4000, 20000, []byte{0x80, 0, 0, 1}, nil, false)},
		{"too long for the ring", frame(progPeerA, progAnchor, 4000, 20000, rtpHeader(0, 1, 1, 0x11223344), make([]byte, recMaxRTP), false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, out, err := f.prog.Test(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if int32(ret) != tcxNext {
				t.Errorf("returned %d, want TCX_NEXT", int32(ret))
			}
			if !bytes.Equal(out, tc.in) {
				t.Error("the frame was changed")
			}
			if recs := f.records(); len(recs) != 0 {
				t.Errorf("%d ring records, want none", len(recs))
			}
		})
	}
}

// fill runs the program on n frames of the flow putFlow installed: n records in the ring.
func (f *progFixture) fill(t testing.TB, n int) {
	t.Helper()
	in := frame(progPeerA, progAnchor, 4000, 20000, rtpHeader(0, 1, 160, 0x11223344), bytes.Repeat([]byte{0x55}, 160), false)
	for range n {
		if ret, _, err := f.prog.Test(in); err != nil || ret != tcxPass {
			t.Fatalf("test run: %d %v", int32(ret), err)
		}
	}
}

// TestKernelRingReadAllocatesNothing: reading the ring (the media loop's drain) allocates
// nothing per record, and stops, without blocking, when the ring is empty.
func TestKernelRingReadAllocatesNothing(t *testing.T) {
	f := newProgFixture(t)
	f.putFlow(t, 0x11223344, 0, 0, 0, 0)
	var n int
	f.k.onRecord = func(rec []byte) {
		if len(rec) == recSize {
			n++
		}
	}
	f.fill(t, 1)
	f.k.read() // the reader's first read polls once; the record buffer was made beforehand
	const records = 120
	f.fill(t, records)
	n = 0
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // as testing.AllocsPerRun: fewer strangers
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f.k.read()
	runtime.ReadMemStats(&after)
	if n != records {
		t.Fatalf("read %d records, want %d", n, records)
	}
	// One allocation per record would be 1 per record; a stray one elsewhere in the
	// process during the read is not the reader's.
	if per := float64(after.Mallocs-before.Mallocs) / records; per >= 0.05 {
		t.Errorf("%.2f allocations per record read", per)
	}
	f.k.read() // an empty ring: returns at once
	if n != records {
		t.Errorf("read %d records from an empty ring", n-records)
	}
}

// BenchmarkKernelRingRead is the drain's reading of the ring, per record (filling it, with
// the timer stopped, is not counted).
func BenchmarkKernelRingRead(b *testing.B) {
	f := newProgFixture(b)
	f.putFlow(b, 0x11223344, 0, 0, 0, 0)
	f.k.onRecord = func([]byte) {}
	const batch = 100
	f.fill(b, batch)
	f.k.read()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		f.fill(b, batch)
		b.StartTimer()
		f.k.read()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}
