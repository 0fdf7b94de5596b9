//go:build linux

package media

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The forwarding program's flow table: the key is a datagram's addresses as they arrive,
// the value what it leaves with (all addresses, ports and SSRCs in network byte order, as
// in the packet).
const (
	flowKeySize = 16 // saddr, daddr, sport, dport, 4 bytes of padding

	fvSaddr     = 0  // u32: the anchor's address
	fvDaddr     = 4  // u32: the other leg's peer
	fvPorts     = 8  // u16 sport (the other leg's port), u16 dport
	fvSSRCIn    = 12 // u32: the only SSRC forwarded; another goes to user space, which rebases
	fvSSRCOut   = 16 // u32: the other leg's outgoing SSRC
	fvSeqDelta  = 20 // u32 (host order): added to the sequence number
	fvTSDelta   = 24 // u32 (host order): added to the timestamp
	fvPTAudio   = 28 // u8: the leg's G.711 payload type; u8 at 29: the other leg's
	fvTEIn      = 30 // u8: the leg's telephone-event type (0: none); u8 at 31: the other leg's
	fvFlow      = 32 // u32: the flow's tag, copied into each ring record (kernelFlow)
	fvFlags     = 36 // u32: flowLocal
	fvIfindex   = 40 // u32: the interface a routed flow leaves by
	flowValSize = 44

	// flowLocal: the peer is on loopback, where the datagram arrived: it goes back up
	// the stack to the peer's socket. Otherwise it leaves by the flow's interface, routed
	// and addressed by the kernel (bpf_redirect_neigh).
	flowLocal = 1
)

// Ring records: the flow's tag (u32), the datagram's RTP length (u32), its arrival time
// (u64, CLOCK_MONOTONIC ns), then the RTP datagram as it arrived.
const (
	recHeader = 16
	recMaxRTP = 496 // longer datagrams stay in user space
	recSize   = recHeader + recMaxRTP
	tcxNext   = -1 // TCX_NEXT: the next program, then the stack
	tcxPass   = 0  // TCX_PASS: the stack
)

// Offsets in the frame as the program sees it at ingress (an Ethernet header first; the
// loopback device has one too).
const (
	offEthType = 12
	offIP      = 14
	offIPFrag  = offIP + 6
	offIPProto = offIP + 9
	offIPCsum  = offIP + 10
	offSaddr   = offIP + 12
	offDaddr   = offIP + 16
	offUDP     = offIP + 20
	offUDPLen  = offUDP + 4
	offUDPCsum = offUDP + 6
	offRTP     = offUDP + 8
	minFrame   = offRTP + rtpHeaderLen

	skbData    = 76 // struct __sk_buff
	skbDataEnd = 80
)

// Stack slots (offsets from the frame pointer).
const (
	stKey     = -16 // the flow key; its addresses are the old pseudo-header words
	stNewAddr = -32 // new saddr, daddr
	stOldRest = -48 // old ports, RTP word 0 (flags, type, sequence), timestamp, SSRC
	stNewRest = -64 // the same, rewritten
)

// The kernel path's objects, by name: the flow table, the ring and the program.
const (
	flowsMap    = "tl_flows"
	ringMap     = "tl_rtp"
	forwardProg = "tl_forward"
)

// kernelSpec is the kernel path's maps (a flow table of maxFlows entries, a ring buffer of
// ringSize bytes: a power of two, a multiple of the page size) and its program, which names
// them; ebpf.NewCollection creates the maps and loads the program with their descriptors.
func kernelSpec(maxFlows, ringSize int) *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			flowsMap: {Name: flowsMap, Type: ebpf.Hash, KeySize: flowKeySize, ValueSize: flowValSize, MaxEntries: uint32(maxFlows)},
			ringMap:  {Name: ringMap, Type: ebpf.RingBuf, MaxEntries: uint32(ringSize)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			forwardProg: {Name: forwardProg, Type: ebpf.SchedCLS, License: "GPL", Instructions: forwardProgram()},
		},
	}
}

// forwardProgram builds the TC ingress program of the kernel path. For an IPv4/UDP datagram
// whose addresses are in flows and whose RTP is plain (version 2, no padding, extension or
// CSRC), with the flow's SSRC and a payload type the flow knows, it hands a copy to ring,
// rewrites addresses, ports, payload type, sequence number, timestamp and SSRC as the
// relay in user space would (checksums updated), and sends it on: up the stack to a peer
// on loopback, else out of the flow's interface. Everything else, and a
// datagram the ring has no room for, goes on to the stack unchanged: to the leg's socket
// and the user-space relay, which checks, drops and counts as it always does.
//
// Jumps name the instruction they go to (WithSymbol); the maps are named references that
// the collection resolves (kernelSpec).
func forwardProgram() asm.Instructions {
	// packet puts the frame's start in R2 and its end in R3, and goes on only for a frame
	// long enough for the headers (again after a helper call, which forgets them).
	packet := func() asm.Instructions {
		return asm.Instructions{
			asm.LoadMem(asm.R2, asm.R6, skbData, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, skbDataEnd, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, minFrame),
			asm.JGT.Reg(asm.R4, asm.R3, "next"),
		}
	}
	p := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)} // the skb
	p = append(p, packet()...)
	p = append(p,
		asm.LoadMem(asm.R5, asm.R2, offEthType, asm.Half),
		asm.JNE.Imm(asm.R5, 0x0008, "next"), // ETH_P_IP, read little-endian
		asm.LoadMem(asm.R5, asm.R2, offIP, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "next"), // IPv4 without options
		asm.LoadMem(asm.R5, asm.R2, offIPProto, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "next"), // UDP
		asm.LoadMem(asm.R5, asm.R2, offIPFrag, asm.Half),
		asm.And.Imm(asm.R5, 0xff3f), // more fragments, fragment offset
		asm.JNE.Imm(asm.R5, 0, "next"),
		asm.LoadMem(asm.R5, asm.R2, offRTP, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x80, "next"), // RTP version 2, nothing optional
		asm.LoadMem(asm.R5, asm.R2, offSaddr, asm.Word),
		asm.StoreMem(asm.R10, stKey, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offDaddr, asm.Word),
		asm.StoreMem(asm.R10, stKey+4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offUDP, asm.Word), // both ports
		asm.StoreMem(asm.R10, stKey+8, asm.R5, asm.Word),
		asm.StoreImm(asm.R10, stKey+12, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(flowsMap),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Reg(asm.R7, asm.R0), // the flow
	)

	p = append(p, packet()...)
	p = append(p,
		asm.LoadMem(asm.R8, asm.R2, offUDPLen, asm.Half),
		asm.HostTo(asm.BE, asm.R8, asm.Half),
		asm.Sub.Imm(asm.R8, 8), // the RTP length
		asm.JLT.Imm(asm.R8, rtpHeaderLen, "next"),
		asm.JGT.Imm(asm.R8, recMaxRTP, "next"),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, offRTP),
		asm.Add.Reg(asm.R4, asm.R8),
		asm.JGT.Reg(asm.R4, asm.R3, "next"), // shorter than its UDP length says
		asm.LoadMem(asm.R5, asm.R2, offRTP+8, asm.Word),
		asm.LoadMem(asm.R4, asm.R7, fvSSRCIn, asm.Word),
		asm.JNE.Reg(asm.R5, asm.R4, "next"),

		// The payload type: the leg's G.711, its telephone-event when the other leg has one,
		// comfort noise (13); anything else is user space's to drop.
		asm.LoadMem(asm.R9, asm.R2, offRTP+1, asm.Byte),
		asm.Mov.Reg(asm.R5, asm.R9),
		asm.And.Imm(asm.R5, 0x7f),
		asm.LoadMem(asm.R4, asm.R7, fvPTAudio, asm.Byte),
		asm.JNE.Reg(asm.R5, asm.R4, "notAudio"),
		asm.LoadMem(asm.R4, asm.R7, fvPTAudio+1, asm.Byte),
		asm.Ja.Label("havePT"),
		asm.LoadMem(asm.R4, asm.R7, fvTEIn, asm.Byte).WithSymbol("notAudio"),
		asm.JEq.Imm(asm.R4, 0, "notTE"),
		asm.JNE.Reg(asm.R5, asm.R4, "notTE"),
		asm.LoadMem(asm.R4, asm.R7, fvTEIn+1, asm.Byte),
		asm.JEq.Imm(asm.R4, 0, "next"),
		asm.Ja.Label("havePT"),
		asm.JNE.Imm(asm.R5, 13, "next").WithSymbol("notTE"),
		asm.Mov.Imm(asm.R4, 13),
		asm.And.Imm(asm.R9, 0x80).WithSymbol("havePT"), // the marker stays
		asm.Or.Reg(asm.R9, asm.R4),

		// The words that change, old and new, for the checksums and the stores.
		asm.LoadMem(asm.R5, asm.R10, stKey+8, asm.Word),
		asm.StoreMem(asm.R10, stOldRest, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offRTP, asm.Word),
		asm.StoreMem(asm.R10, stOldRest+4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offRTP+4, asm.Word),
		asm.StoreMem(asm.R10, stOldRest+8, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offRTP+8, asm.Word),
		asm.StoreMem(asm.R10, stOldRest+12, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R7, fvPorts, asm.Word),
		asm.StoreMem(asm.R10, stNewRest, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offRTP+2, asm.Half), // sequence number + delta, back in network order
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.LoadMem(asm.R4, asm.R7, fvSeqDelta, asm.Word),
		asm.Add.Reg(asm.R5, asm.R4),
		asm.And.Imm(asm.R5, 0xffff),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.LSh.Imm(asm.R5, 16),
		asm.Mov.Reg(asm.R4, asm.R9),
		asm.LSh.Imm(asm.R4, 8),
		asm.Or.Reg(asm.R5, asm.R4),
		asm.Or.Imm(asm.R5, 0x80),
		asm.StoreMem(asm.R10, stNewRest+4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, offRTP+4, asm.Word), // timestamp + delta
		asm.HostTo(asm.BE, asm.R5, asm.Word),
		asm.LoadMem(asm.R4, asm.R7, fvTSDelta, asm.Word),
		asm.Add.Reg32(asm.R5, asm.R4),
		asm.HostTo(asm.BE, asm.R5, asm.Word),
		asm.StoreMem(asm.R10, stNewRest+8, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R7, fvSSRCOut, asm.Word),
		asm.StoreMem(asm.R10, stNewRest+12, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R7, fvSaddr, asm.Word),
		asm.StoreMem(asm.R10, stNewAddr, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R7, fvDaddr, asm.Word),
		asm.StoreMem(asm.R10, stNewAddr+4, asm.R5, asm.Word),

		// A copy for user space (statistics, the RTP timeout, the recording).
		asm.LoadMapPtr(asm.R1, 0).WithReference(ringMap),
		asm.Mov.Imm(asm.R2, recSize),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R5, asm.R7, fvFlow, asm.Word),
		asm.StoreMem(asm.R9, 0, asm.R5, asm.Word),
		asm.StoreMem(asm.R9, 4, asm.R8, asm.Word),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R9, 8, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, offRTP),
		asm.Mov.Reg(asm.R3, asm.R9),
		asm.Add.Imm(asm.R3, recHeader),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "discard"),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.Mov.Imm(asm.R2, 1), // BPF_RB_NO_WAKEUP: the loop reads on its own clock
		asm.FnRingbufSubmit.Call(),
	)

	// Checksum differences: the addresses (the IP header and UDP's pseudo-header), then
	// the UDP and RTP words.
	diff := func(from, to int16, n int32, into asm.Register) asm.Instructions { // bpf_csum_diff of two stack slots
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.R10),
			asm.Add.Imm(asm.R1, int32(from)),
			asm.Mov.Imm(asm.R2, n),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, int32(to)),
			asm.Mov.Imm(asm.R4, n),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnCsumDiff.Call(),
			asm.Mov.Reg(into, asm.R0),
		}
	}
	p = append(p, diff(stKey, stNewAddr, 8, asm.R9)...)
	p = append(p, diff(stOldRest, stNewRest, 16, asm.R8)...)
	csum := func(fn asm.BuiltinFunc, off int32, diff asm.Register, flags int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, off),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mov.Reg(asm.R4, diff),
			asm.Mov.Imm(asm.R5, flags),
			fn.Call(),
		}
	}
	p = append(p, csum(asm.FnL3CsumReplace, offIPCsum, asm.R9, 0)...)
	p = append(p, csum(asm.FnL4CsumReplace, offUDPCsum, asm.R9, 0x10|0x20)...) // BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0
	p = append(p, csum(asm.FnL4CsumReplace, offUDPCsum, asm.R8, 0x20)...)
	store := func(off int32, from int16, n int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, off),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, int32(from)),
			asm.Mov.Imm(asm.R4, n),
			asm.Mov.Imm(asm.R5, 1), // BPF_F_RECOMPUTE_CSUM: keeps a CHECKSUM_COMPLETE skb's sum true
			asm.FnSkbStoreBytes.Call(),
		}
	}
	p = append(p, store(offSaddr, stNewAddr, 8)...)
	p = append(p, store(offUDP, stNewRest, 4)...)
	p = append(p, store(offRTP, stNewRest+4, 12)...)

	return append(p,
		asm.LoadMem(asm.R5, asm.R7, fvFlags, asm.Word),
		asm.And.Imm(asm.R5, flowLocal),
		asm.JEq.Imm(asm.R5, 0, "redirect"),
		asm.Mov.Imm(asm.R0, tcxPass),
		asm.Return(),
		// The kernel routes it and fills the Ethernet header in.
		asm.LoadMem(asm.R1, asm.R7, fvIfindex, asm.Word).WithSymbol("redirect"),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),

		asm.Mov.Reg(asm.R1, asm.R9).WithSymbol("discard"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRingbufDiscard.Call(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	)
}
