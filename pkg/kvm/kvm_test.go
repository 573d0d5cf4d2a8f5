package kvm

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
	"unsafe"
)

// Sizes and offsets from the kernel's uapi headers (x86_64).
func TestLayouts(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_regs.rip", unsafe.Offsetof(Regs{}.RIP), 128},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_segment.unusable", unsafe.Offsetof(Segment{}.Unusable), 22},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_sregs.gdt", unsafe.Offsetof(Sregs{}.GDT), 192},
		{"kvm_sregs.cr0", unsafe.Offsetof(Sregs{}.CR0), 224},
		{"kvm_sregs.efer", unsafe.Offsetof(Sregs{}.EFER), 264},
		{"kvm_sregs.apic_base", unsafe.Offsetof(Sregs{}.APICBase), 272},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), 416},
		{"kvm_fpu.fcw", unsafe.Offsetof(FPU{}.FCW), 128},
		{"kvm_fpu.last_ip", unsafe.Offsetof(FPU{}.LastIP), 136},
		{"kvm_fpu.xmm", unsafe.Offsetof(FPU{}.XMM), 152},
		{"kvm_fpu.mxcsr", unsafe.Offsetof(FPU{}.MXCSR), 408},
		{"kvm_lapic_state", unsafe.Sizeof(LAPICState{}), 1024},
		{"kvm_msr_entry", unsafe.Sizeof(MSREntry{}), 16},
		{"kvm_msrs", unsafe.Sizeof(msrsHeader{}), 8},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_cpuid_entry2.edx", unsafe.Offsetof(CPUIDEntry{}.EDX), 24},
		{"kvm_cpuid2", unsafe.Sizeof(cpuid2Header{}), 8},
		{"kvm_userspace_memory_region", unsafe.Sizeof(UserspaceMemoryRegion{}), 32},
		{"kvm_userspace_memory_region.userspace_addr", unsafe.Offsetof(UserspaceMemoryRegion{}.UserspaceAddr), 24},
		{"kvm_irq_level", unsafe.Sizeof(irqLevel{}), 8},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), 32},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), 64},
		{"kvm_ioeventfd.fd", unsafe.Offsetof(ioeventfd{}.FD), 20},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), 64},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %d, kernel uapi says %d", tc.name, tc.got, tc.want)
		}
	}
}

// Request numbers as the kernel headers expand them (checked against
// <linux/kvm.h> on x86_64).
func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"KVM_CREATE_VM", kvmCreateVM, 0xAE01},
		{"KVM_RUN", kvmRun, 0xAE80},
		{"KVM_GET_SUPPORTED_CPUID", kvmGetSupportedCPUID, 0xC008AE05},
		{"KVM_SET_CPUID2", kvmSetCPUID2, 0x4008AE90},
		{"KVM_SET_USER_MEMORY_REGION", kvmSetUserMemoryRegion, 0x4020AE46},
		{"KVM_GET_REGS", kvmGetRegs, 0x8090AE81},
		{"KVM_SET_REGS", kvmSetRegs, 0x4090AE82},
		{"KVM_GET_SREGS", kvmGetSregs, 0x8138AE83},
		{"KVM_SET_SREGS", kvmSetSregs, 0x4138AE84},
		{"KVM_SET_MSRS", kvmSetMSRs, 0x4008AE89},
		{"KVM_GET_FPU", kvmGetFPU, 0x81A0AE8C},
		{"KVM_SET_FPU", kvmSetFPU, 0x41A0AE8D},
		{"KVM_GET_LAPIC", kvmGetLAPIC, 0x8400AE8E},
		{"KVM_SET_LAPIC", kvmSetLAPIC, 0x4400AE8F},
		{"KVM_IRQFD", kvmIRQFD, 0x4020AE76},
		{"KVM_IOEVENTFD", kvmIOEventFD, 0x4040AE79},
		{"KVM_CREATE_PIT2", kvmCreatePIT2, 0x4040AE77},
		{"KVM_IRQ_LINE", kvmIRQLine, 0x4008AE61},
		{"KVM_SET_IDENTITY_MAP_ADDR", kvmSetIdentityMapAddr, 0x4008AE48},
		{"KVM_SET_MP_STATE", kvmSetMPState, 0x4004AE99},
		{"KVM_GET_STATS_FD", kvmGetStatsFD, 0xAECE},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

func TestReadStats(t *testing.T) {
	// Hand-built stats file: two scalars and one histogram.
	const nameSize = 48
	var b bytes.Buffer
	hdr := make([]byte, statsHeaderSize)
	desc := statsHeaderSize
	descSize := statsDescFixed + nameSize
	data := desc + 3*descSize
	binary.LittleEndian.PutUint32(hdr[4:], nameSize)
	binary.LittleEndian.PutUint32(hdr[8:], 3)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(desc))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(data))
	b.Write(hdr)
	add := func(name string, flags uint32, size uint16, off uint32) {
		d := make([]byte, descSize)
		binary.LittleEndian.PutUint32(d[0:], flags)
		binary.LittleEndian.PutUint16(d[6:], size)
		binary.LittleEndian.PutUint32(d[8:], off)
		copy(d[statsDescFixed:], name)
		b.Write(d)
	}
	add("exits", 0, 1, 0)
	add("halt_wait_hist", 4, 2, 8)
	add("halt_exits", 0, 1, 24)
	vals := make([]byte, 32)
	binary.LittleEndian.PutUint64(vals[0:], 1234)
	binary.LittleEndian.PutUint64(vals[24:], 56)
	b.Write(vals)
	got, err := ReadStats(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["exits"] != 1234 || got["halt_exits"] != 56 {
		t.Fatalf("stats = %v", got)
	}
	if _, err := ReadStats(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Fatal("short header accepted")
	}
}

func TestOpen(t *testing.T) {
	if _, err := os.Stat(DevicePath); err != nil {
		t.Skipf("SKIP: %s missing (%v): cannot exercise real ioctls", DevicePath, err)
	}
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []int{CapIRQChip, CapUserMemory, CapIRQFD, CapPIT2} {
		if s.CheckExtension(c) == 0 {
			t.Errorf("capability %d missing", c)
		}
	}
	ents, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) == 0 || ents[0].Function != 0 {
		t.Fatalf("supported CPUID has %d entries, first %+v", len(ents), ents)
	}
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.CreateIRQChip(); err != nil {
		t.Fatal(err)
	}
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetCPUID2(ents); err != nil {
		t.Fatal(err)
	}
	r, err := c.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if r.RIP != 0xfff0 {
		t.Errorf("reset RIP = %#x, want 0xfff0", r.RIP)
	}
	if f, err := c.StatsFD(); err == nil {
		st, err := ReadStats(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st["exits"]; !ok {
			t.Errorf("vCPU stats lack \"exits\": %v", st)
		}
	} else {
		t.Logf("no binary stats on this host: %v", err)
	}
}
