package vmm

import (
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/kvm"
)

// MSRs set on every vCPU before boot.
const (
	msrIA32TSC           = 0x10
	msrSysenterCS        = 0x174
	msrSysenterESP       = 0x175
	msrSysenterEIP       = 0x176
	msrMiscEnable        = 0x1A0
	msrMTRRDefType       = 0x2FF
	msrSTAR              = 0xC0000081
	msrLSTAR             = 0xC0000082
	msrCSTAR             = 0xC0000083
	msrSyscallMask       = 0xC0000084
	msrKernelGSBase      = 0xC0000102
	miscEnableFastString = 1
	mtrrEnable           = 1 << 11
	mtrrTypeWB           = 6
)

// Feature bits of the guest's CPUID, all set here and only here; the
// topology leaves (0x1 EBX and HTT, 0x4, 0xB, 0x1F, 0x8000001D/1E) are
// pkg/topology's (Topology.CPUID).
const (
	leafFeatures     = 0x1
	leafExtFeatures  = 0x80000001
	leafKVMFeatures  = 0x40000001 // KVM paravirt features
	featHypervisor   = 1 << 31    // leaf 1 ECX
	featVMX          = 1 << 5     // leaf 1 ECX
	featSVM          = 1 << 2     // leaf 0x80000001 ECX
	kvmHintsRealtime = 1 << 0     // leaf 0x40000001 EDX
)

// guestFeatures returns KVM's supported CPUID with the guest's feature
// bits: the hypervisor bit set; VMX and SVM hidden (a guest kernel with KVM
// built in would otherwise set up, and on emergency restart tear down,
// nested virtualization for nothing); with realtime (perf mode)
// KVM_HINTS_REALTIME. It runs once per VM; the TSC-deadline timer is
// deliberately left as KVM reports it (not advertised: see build).
func guestFeatures(supported []kvm.CPUIDEntry, realtime bool) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, len(supported))
	copy(out, supported)
	for i := range out {
		e := &out[i]
		switch e.Function {
		case leafFeatures:
			e.ECX |= featHypervisor
			e.ECX &^= featVMX
		case leafExtFeatures:
			e.ECX &^= featSVM
		case leafKVMFeatures:
			if realtime {
				e.EDX |= kvmHintsRealtime
			}
		}
	}
	return out
}

// setupVCPU prepares vCPU c for Linux. CPUID goes first: real KVM refuses
// long-mode sregs until KVM_SET_CPUID2 has run. Only the bootstrap vCPU
// gets registers for the 64-bit entry; the others wait for INIT/SIPI.
func setupVCPU(c *kvm.VCPU, cpuid []kvm.CPUIDEntry, boot BootInfo) error {
	if err := c.SetCPUID2(cpuid); err != nil {
		return err
	}
	msrs := []kvm.MSREntry{
		{Index: msrSysenterCS}, {Index: msrSysenterESP}, {Index: msrSysenterEIP},
		{Index: msrSTAR}, {Index: msrLSTAR}, {Index: msrCSTAR},
		{Index: msrKernelGSBase}, {Index: msrSyscallMask}, {Index: msrIA32TSC},
		{Index: msrMiscEnable, Data: miscEnableFastString},
		{Index: msrMTRRDefType, Data: mtrrEnable | mtrrTypeWB},
	}
	if err := c.SetMSRs(msrs); err != nil {
		return err
	}
	l, err := c.LAPIC()
	if err != nil {
		return err
	}
	const lvt0, lvt1 = 0x350, 0x360
	const extINT, nmi = 0x700, 0x400
	put := func(off int, v uint32) {
		l.Regs[off] = byte(v)
		l.Regs[off+1] = byte(v >> 8)
		l.Regs[off+2] = byte(v >> 16)
		l.Regs[off+3] = byte(v >> 24)
	}
	get := func(off int) uint32 {
		return uint32(l.Regs[off]) | uint32(l.Regs[off+1])<<8 | uint32(l.Regs[off+2])<<16 | uint32(l.Regs[off+3])<<24
	}
	put(lvt0, get(lvt0)&^0x700|extINT)
	put(lvt1, get(lvt1)&^0x700|nmi)
	if err := c.SetLAPIC(l); err != nil {
		return err
	}
	if c.ID != 0 {
		return nil
	}
	f := kvm.FPU{FCW: 0x37F, MXCSR: 0x1F80}
	if err := c.SetFPU(f); err != nil {
		return err
	}
	s, err := c.Sregs()
	if err != nil {
		return err
	}
	code := kvm.Segment{Base: 0, Limit: 0xFFFFFFFF, Selector: selCode, Type: 0xB, Present: 1, S: 1, L: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xFFFFFFFF, Selector: selData, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}
	tss := kvm.Segment{Base: 0, Limit: 0xFFFFF, Selector: selTSS, Type: 0xB, Present: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = tss
	s.GDT = kvm.DTable{Base: gdtAddr, Limit: uint16(8*len(gdtTable) - 1)}
	s.IDT = kvm.DTable{Base: idtAddr, Limit: 7}
	const cr0PE, cr0ET, cr0PG = 1, 0x10, 1 << 31
	const cr4PAE = 0x20
	const eferLME, eferLMA = 0x100, 0x400
	s.CR0 = cr0PE | cr0ET | cr0PG
	s.CR3 = pml4Addr
	s.CR4 = cr4PAE
	s.EFER = eferLME | eferLMA
	if err := c.SetSregs(s); err != nil {
		return fmt.Errorf("enter long mode: %w", err)
	}
	return c.SetRegs(kvm.Regs{RIP: boot.Entry, RSI: zeroPageAddr, RSP: stackTop, RBP: stackTop, RFLAGS: 2})
}
