//go:build linux

package ebpf

import "testing"

func TestAssembleResolvesLabels(t *testing.T) {
	a := NewAsm()
	a.MovImm(R0, 1)
	a.JumpImm(JEq, R1, 0, "out") // forward, over two instructions
	a.LoadMap(R2, 7)             // two slots
	a.Label("out")
	a.Exit()
	insns, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if len(insns) != 5 || insns[1].off != 2 {
		t.Fatalf("%d instructions, jump offset %d; want 5 and 2", len(insns), insns[1].off)
	}
	if insns[2].code != 0x18 || insns[2].regs != 0x12 || insns[2].imm != 7 {
		t.Errorf("map load %+v", insns[2])
	}
}

func TestAssembleRefusesBadLabels(t *testing.T) {
	a := NewAsm()
	a.Goto("nowhere")
	if _, err := a.Assemble(); err == nil {
		t.Error("a jump to an undefined label assembled")
	}
	a = NewAsm()
	a.Label("x")
	a.Label("x")
	a.Exit()
	if _, err := a.Assemble(); err == nil {
		t.Error("a label defined twice assembled")
	}
}
