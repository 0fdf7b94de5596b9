//go:build linux

package ebpf

import "fmt"

// Reg is a BPF register: R0 holds return values, R1-R5 carry a call's arguments and are
// lost in it, R6-R9 survive calls, R10 is the read-only frame pointer.
type Reg uint8

// The registers.
const (
	R0 Reg = iota
	R1
	R2
	R3
	R4
	R5
	R6
	R7
	R8
	R9
	R10
)

// Instruction classes, sizes, modes and operations (include/uapi/linux/bpf_common.h, bpf.h).
const (
	clsLD    = 0x00
	clsLDX   = 0x01
	clsST    = 0x02
	clsSTX   = 0x03
	clsALU   = 0x04
	clsJMP   = 0x05
	clsALU64 = 0x07

	srcK = 0x00
	srcX = 0x08

	modeIMM = 0x00
	modeMEM = 0x60

	opEND  = 0xd0
	toBE   = 0x08
	opCall = 0x80
	opExit = 0x90

	pseudoMapFD = 1
)

// Size is a memory access's width.
type Size uint8

// The widths.
const (
	W  Size = 0x00 // 4 bytes
	H  Size = 0x08 // 2 bytes
	B  Size = 0x10 // 1 byte
	DW Size = 0x18 // 8 bytes
)

// ALUOp is an arithmetic operation.
type ALUOp uint8

// The operations the programs here use.
const (
	Add ALUOp = 0x00
	Sub ALUOp = 0x10
	Or  ALUOp = 0x40
	And ALUOp = 0x50
	Lsh ALUOp = 0x60
	Mov ALUOp = 0xb0
)

// JumpOp is a conditional jump's comparison (unsigned unless named signed).
type JumpOp uint8

// The comparisons.
const (
	JEq JumpOp = 0x10
	JGT JumpOp = 0x20
	JNE JumpOp = 0x50
	JLT JumpOp = 0xa0
)

// Helper is a kernel helper function's number (enum bpf_func_id).
type Helper int32

// The helpers the programs here call.
const (
	MapLookupElem  Helper = 1
	KtimeGetNS     Helper = 5
	SkbStoreBytes  Helper = 9
	L3CsumReplace  Helper = 10
	L4CsumReplace  Helper = 11
	SkbLoadBytes   Helper = 26
	CsumDiff       Helper = 28
	RingbufReserve Helper = 131
	RingbufSubmit  Helper = 132
	RingbufDiscard Helper = 133
	RedirectNeigh  Helper = 152
)

// Insn is one instruction in the kernel's layout (struct bpf_insn).
type Insn struct {
	code uint8
	regs uint8 // dst in the low nibble, src in the high one
	off  int16
	imm  int32
}

// Asm builds a program instruction by instruction, with named labels for jumps.
type Asm struct {
	insns  []Insn
	labels map[string]int
	jumps  map[int]string // instruction index -> label it jumps to
	err    error
}

// NewAsm starts an empty program.
func NewAsm() *Asm { return &Asm{labels: map[string]int{}, jumps: map[int]string{}} }

func (a *Asm) emit(code uint8, dst, src Reg, off int16, imm int32) {
	a.insns = append(a.insns, Insn{code: code, regs: uint8(dst) | uint8(src)<<4, off: off, imm: imm})
}

// ALUImm is dst op= imm on 64 bits.
func (a *Asm) ALUImm(op ALUOp, dst Reg, imm int32) { a.emit(clsALU64|uint8(op)|srcK, dst, 0, 0, imm) }

// ALUReg is dst op= src on 64 bits.
func (a *Asm) ALUReg(op ALUOp, dst, src Reg) { a.emit(clsALU64|uint8(op)|srcX, dst, src, 0, 0) }

// ALU32Reg is dst op= src on the low 32 bits (the result is zero-extended).
func (a *Asm) ALU32Reg(op ALUOp, dst, src Reg) { a.emit(clsALU|uint8(op)|srcX, dst, src, 0, 0) }

// Mov is dst = src.
func (a *Asm) Mov(dst, src Reg) { a.ALUReg(Mov, dst, src) }

// MovImm is dst = imm.
func (a *Asm) MovImm(dst Reg, imm int32) { a.ALUImm(Mov, dst, imm) }

// ToBE converts the low bits (16 or 32) of dst between host (little-endian) and network
// byte order.
func (a *Asm) ToBE(dst Reg, bits int32) { a.emit(clsALU|opEND|toBE, dst, 0, 0, bits) }

// Load is dst = *(size *)(src + off).
func (a *Asm) Load(size Size, dst, src Reg, off int16) {
	a.emit(clsLDX|uint8(size)|modeMEM, dst, src, off, 0)
}

// Store is *(size *)(dst + off) = src.
func (a *Asm) Store(size Size, dst Reg, off int16, src Reg) {
	a.emit(clsSTX|uint8(size)|modeMEM, dst, src, off, 0)
}

// StoreImm is *(size *)(dst + off) = imm.
func (a *Asm) StoreImm(size Size, dst Reg, off int16, imm int32) {
	a.emit(clsST|uint8(size)|modeMEM, dst, 0, off, imm)
}

// LoadMap puts the map with descriptor fd in dst (a two-slot load the kernel resolves).
func (a *Asm) LoadMap(dst Reg, fd int) {
	a.emit(clsLD|uint8(DW)|modeIMM, dst, pseudoMapFD, 0, int32(fd))
	a.emit(0, 0, 0, 0, 0)
}

// JumpImm jumps to label when dst op imm.
func (a *Asm) JumpImm(op JumpOp, dst Reg, imm int32, label string) {
	a.jumps[len(a.insns)] = label
	a.emit(clsJMP|uint8(op)|srcK, dst, 0, 0, imm)
}

// JumpReg jumps to label when dst op src.
func (a *Asm) JumpReg(op JumpOp, dst, src Reg, label string) {
	a.jumps[len(a.insns)] = label
	a.emit(clsJMP|uint8(op)|srcX, dst, src, 0, 0)
}

// Goto jumps to label.
func (a *Asm) Goto(label string) {
	a.jumps[len(a.insns)] = label
	a.emit(clsJMP, 0, 0, 0, 0)
}

// Call calls a kernel helper: arguments in R1-R5, result in R0.
func (a *Asm) Call(h Helper) { a.emit(clsJMP|opCall, 0, 0, 0, int32(h)) }

// Exit returns R0.
func (a *Asm) Exit() { a.emit(clsJMP|opExit, 0, 0, 0, 0) }

// Label names the next instruction.
func (a *Asm) Label(name string) {
	if _, dup := a.labels[name]; dup && a.err == nil {
		a.err = fmt.Errorf("ebpf: label %q defined twice", name)
	}
	a.labels[name] = len(a.insns)
}

// Assemble resolves the jumps and returns the program.
func (a *Asm) Assemble() ([]Insn, error) {
	if a.err != nil {
		return nil, a.err
	}
	out := append([]Insn(nil), a.insns...)
	for i, name := range a.jumps {
		to, ok := a.labels[name]
		if !ok {
			return nil, fmt.Errorf("ebpf: jump to undefined label %q", name)
		}
		out[i].off = int16(to - i - 1)
	}
	return out, nil
}
