//go:build linux

package media

import (
	bpf "github.com/trackline/trackline/media/ebpf"
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

// forwardProgram builds the TC ingress program of the kernel path. For an IPv4/UDP datagram
// whose addresses are in flows and whose RTP is plain (version 2, no padding, extension or
// CSRC), with the flow's SSRC and a payload type the flow knows, it hands a copy to ring,
// rewrites addresses, ports, payload type, sequence number, timestamp and SSRC as the
// relay in user space would (checksums updated), and sends it on: up the stack to a peer
// on loopback, else out of the flow's interface. Everything else, and a
// datagram the ring has no room for, goes on to the stack unchanged: to the leg's socket
// and the user-space relay, which checks, drops and counts as it always does.
func forwardProgram(flows, ring int) ([]bpf.Insn, error) {
	a := bpf.NewAsm()
	a.Mov(bpf.R6, bpf.R1) // the skb
	// packet puts the frame's start in R2 and its end in R3, and goes on only for a frame
	// long enough for the headers (again after a helper call, which forgets them).
	packet := func() {
		a.Load(bpf.W, bpf.R2, bpf.R6, skbData)
		a.Load(bpf.W, bpf.R3, bpf.R6, skbDataEnd)
		a.Mov(bpf.R4, bpf.R2)
		a.ALUImm(bpf.Add, bpf.R4, minFrame)
		a.JumpReg(bpf.JGT, bpf.R4, bpf.R3, "next")
	}
	packet()
	a.Load(bpf.H, bpf.R5, bpf.R2, offEthType)
	a.JumpImm(bpf.JNE, bpf.R5, 0x0008, "next") // ETH_P_IP, read little-endian
	a.Load(bpf.B, bpf.R5, bpf.R2, offIP)
	a.JumpImm(bpf.JNE, bpf.R5, 0x45, "next") // IPv4 without options
	a.Load(bpf.B, bpf.R5, bpf.R2, offIPProto)
	a.JumpImm(bpf.JNE, bpf.R5, 17, "next") // UDP
	a.Load(bpf.H, bpf.R5, bpf.R2, offIPFrag)
	a.ALUImm(bpf.And, bpf.R5, 0xff3f) // more fragments, fragment offset
	a.JumpImm(bpf.JNE, bpf.R5, 0, "next")
	a.Load(bpf.B, bpf.R5, bpf.R2, offRTP)
	a.JumpImm(bpf.JNE, bpf.R5, 0x80, "next") // RTP version 2, nothing optional
	a.Load(bpf.W, bpf.R5, bpf.R2, offSaddr)
	a.Store(bpf.W, bpf.R10, stKey, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R2, offDaddr)
	a.Store(bpf.W, bpf.R10, stKey+4, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R2, offUDP) // both ports
	a.Store(bpf.W, bpf.R10, stKey+8, bpf.R5)
	a.StoreImm(bpf.W, bpf.R10, stKey+12, 0)
	a.LoadMap(bpf.R1, flows)
	a.Mov(bpf.R2, bpf.R10)
	a.ALUImm(bpf.Add, bpf.R2, stKey)
	a.Call(bpf.MapLookupElem)
	a.JumpImm(bpf.JEq, bpf.R0, 0, "next")
	a.Mov(bpf.R7, bpf.R0) // the flow

	packet()
	a.Load(bpf.H, bpf.R8, bpf.R2, offUDPLen)
	a.ToBE(bpf.R8, 16)
	a.ALUImm(bpf.Sub, bpf.R8, 8) // the RTP length
	a.JumpImm(bpf.JLT, bpf.R8, rtpHeaderLen, "next")
	a.JumpImm(bpf.JGT, bpf.R8, recMaxRTP, "next")
	a.Mov(bpf.R4, bpf.R2)
	a.ALUImm(bpf.Add, bpf.R4, offRTP)
	a.ALUReg(bpf.Add, bpf.R4, bpf.R8)
	a.JumpReg(bpf.JGT, bpf.R4, bpf.R3, "next") // shorter than its UDP length says
	a.Load(bpf.W, bpf.R5, bpf.R2, offRTP+8)
	a.Load(bpf.W, bpf.R4, bpf.R7, fvSSRCIn)
	a.JumpReg(bpf.JNE, bpf.R5, bpf.R4, "next")

	// The payload type: the leg's G.711, its telephone-event when the other leg has one,
	// comfort noise (13); anything else is user space's to drop.
	a.Load(bpf.B, bpf.R9, bpf.R2, offRTP+1)
	a.Mov(bpf.R5, bpf.R9)
	a.ALUImm(bpf.And, bpf.R5, 0x7f)
	a.Load(bpf.B, bpf.R4, bpf.R7, fvPTAudio)
	a.JumpReg(bpf.JNE, bpf.R5, bpf.R4, "notAudio")
	a.Load(bpf.B, bpf.R4, bpf.R7, fvPTAudio+1)
	a.Goto("havePT")
	a.Label("notAudio")
	a.Load(bpf.B, bpf.R4, bpf.R7, fvTEIn)
	a.JumpImm(bpf.JEq, bpf.R4, 0, "notTE")
	a.JumpReg(bpf.JNE, bpf.R5, bpf.R4, "notTE")
	a.Load(bpf.B, bpf.R4, bpf.R7, fvTEIn+1)
	a.JumpImm(bpf.JEq, bpf.R4, 0, "next")
	a.Goto("havePT")
	a.Label("notTE")
	a.JumpImm(bpf.JNE, bpf.R5, 13, "next")
	a.MovImm(bpf.R4, 13)
	a.Label("havePT")
	a.ALUImm(bpf.And, bpf.R9, 0x80) // the marker stays
	a.ALUReg(bpf.Or, bpf.R9, bpf.R4)

	// The words that change, old and new, for the checksums and the stores.
	a.Load(bpf.W, bpf.R5, bpf.R10, stKey+8)
	a.Store(bpf.W, bpf.R10, stOldRest, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R2, offRTP)
	a.Store(bpf.W, bpf.R10, stOldRest+4, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R2, offRTP+4)
	a.Store(bpf.W, bpf.R10, stOldRest+8, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R2, offRTP+8)
	a.Store(bpf.W, bpf.R10, stOldRest+12, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R7, fvPorts)
	a.Store(bpf.W, bpf.R10, stNewRest, bpf.R5)
	a.Load(bpf.H, bpf.R5, bpf.R2, offRTP+2) // sequence number + delta, back in network order
	a.ToBE(bpf.R5, 16)
	a.Load(bpf.W, bpf.R4, bpf.R7, fvSeqDelta)
	a.ALUReg(bpf.Add, bpf.R5, bpf.R4)
	a.ALUImm(bpf.And, bpf.R5, 0xffff)
	a.ToBE(bpf.R5, 16)
	a.ALUImm(bpf.Lsh, bpf.R5, 16)
	a.Mov(bpf.R4, bpf.R9)
	a.ALUImm(bpf.Lsh, bpf.R4, 8)
	a.ALUReg(bpf.Or, bpf.R5, bpf.R4)
	a.ALUImm(bpf.Or, bpf.R5, 0x80)
	a.Store(bpf.W, bpf.R10, stNewRest+4, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R2, offRTP+4) // timestamp + delta
	a.ToBE(bpf.R5, 32)
	a.Load(bpf.W, bpf.R4, bpf.R7, fvTSDelta)
	a.ALU32Reg(bpf.Add, bpf.R5, bpf.R4)
	a.ToBE(bpf.R5, 32)
	a.Store(bpf.W, bpf.R10, stNewRest+8, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R7, fvSSRCOut)
	a.Store(bpf.W, bpf.R10, stNewRest+12, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R7, fvSaddr)
	a.Store(bpf.W, bpf.R10, stNewAddr, bpf.R5)
	a.Load(bpf.W, bpf.R5, bpf.R7, fvDaddr)
	a.Store(bpf.W, bpf.R10, stNewAddr+4, bpf.R5)

	// A copy for user space (statistics, the RTP timeout, the recording).
	a.LoadMap(bpf.R1, ring)
	a.MovImm(bpf.R2, recSize)
	a.MovImm(bpf.R3, 0)
	a.Call(bpf.RingbufReserve)
	a.JumpImm(bpf.JEq, bpf.R0, 0, "next")
	a.Mov(bpf.R9, bpf.R0)
	a.Load(bpf.W, bpf.R5, bpf.R7, fvFlow)
	a.Store(bpf.W, bpf.R9, 0, bpf.R5)
	a.Store(bpf.W, bpf.R9, 4, bpf.R8)
	a.Call(bpf.KtimeGetNS)
	a.Store(bpf.DW, bpf.R9, 8, bpf.R0)
	a.Mov(bpf.R1, bpf.R6)
	a.MovImm(bpf.R2, offRTP)
	a.Mov(bpf.R3, bpf.R9)
	a.ALUImm(bpf.Add, bpf.R3, recHeader)
	a.Mov(bpf.R4, bpf.R8)
	a.Call(bpf.SkbLoadBytes)
	a.JumpImm(bpf.JNE, bpf.R0, 0, "discard")
	a.Mov(bpf.R1, bpf.R9)
	a.MovImm(bpf.R2, 1) // BPF_RB_NO_WAKEUP: the loop reads on its own clock
	a.Call(bpf.RingbufSubmit)

	// Checksum differences: the addresses (the IP header and UDP's pseudo-header), then
	// the UDP and RTP words.
	diff := func(from, to int16, n int32, into bpf.Reg) { // bpf_csum_diff of two stack slots
		a.Mov(bpf.R1, bpf.R10)
		a.ALUImm(bpf.Add, bpf.R1, int32(from))
		a.MovImm(bpf.R2, n)
		a.Mov(bpf.R3, bpf.R10)
		a.ALUImm(bpf.Add, bpf.R3, int32(to))
		a.MovImm(bpf.R4, n)
		a.MovImm(bpf.R5, 0)
		a.Call(bpf.CsumDiff)
		a.Mov(into, bpf.R0)
	}
	diff(stKey, stNewAddr, 8, bpf.R9)
	diff(stOldRest, stNewRest, 16, bpf.R8)
	csum := func(h bpf.Helper, off int32, diff bpf.Reg, flags int32) {
		a.Mov(bpf.R1, bpf.R6)
		a.MovImm(bpf.R2, off)
		a.MovImm(bpf.R3, 0)
		a.Mov(bpf.R4, diff)
		a.MovImm(bpf.R5, flags)
		a.Call(h)
	}
	csum(bpf.L3CsumReplace, offIPCsum, bpf.R9, 0)
	csum(bpf.L4CsumReplace, offUDPCsum, bpf.R9, 0x10|0x20) // BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0
	csum(bpf.L4CsumReplace, offUDPCsum, bpf.R8, 0x20)
	store := func(off int32, from int16, n int32) {
		a.Mov(bpf.R1, bpf.R6)
		a.MovImm(bpf.R2, off)
		a.Mov(bpf.R3, bpf.R10)
		a.ALUImm(bpf.Add, bpf.R3, int32(from))
		a.MovImm(bpf.R4, n)
		a.MovImm(bpf.R5, 1) // BPF_F_RECOMPUTE_CSUM: keeps a CHECKSUM_COMPLETE skb's sum true
		a.Call(bpf.SkbStoreBytes)
	}
	store(offSaddr, stNewAddr, 8)
	store(offUDP, stNewRest, 4)
	store(offRTP, stNewRest+4, 12)

	a.Load(bpf.W, bpf.R5, bpf.R7, fvFlags)
	a.ALUImm(bpf.And, bpf.R5, flowLocal)
	a.JumpImm(bpf.JEq, bpf.R5, 0, "redirect")
	a.MovImm(bpf.R0, tcxPass)
	a.Exit()
	a.Label("redirect") // the kernel routes it and fills the Ethernet header in
	a.Load(bpf.W, bpf.R1, bpf.R7, fvIfindex)
	a.MovImm(bpf.R2, 0)
	a.MovImm(bpf.R3, 0)
	a.MovImm(bpf.R4, 0)
	a.Call(bpf.RedirectNeigh)
	a.Exit()

	a.Label("discard")
	a.Mov(bpf.R1, bpf.R9)
	a.MovImm(bpf.R2, 0)
	a.Call(bpf.RingbufDiscard)
	a.Label("next")
	a.MovImm(bpf.R0, tcxNext)
	a.Exit()
	return a.Assemble()
}
