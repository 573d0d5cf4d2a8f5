package lab

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// KVM ioctl numbers (linux/kvm.h).
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmSetTSSAddr          = 0xAE47
	kvmRun                 = 0xAE80
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmExitHLT             = 5
)

// KVMKind is the probe's classification of /dev/kvm.
type KVMKind string

const (
	// KVMNone: no usable /dev/kvm.
	KVMNone KVMKind = "none"
	// KVMEmulated: /dev/kvm answers but runs guest code in software at a
	// few million instructions per second; Linux does not boot on it.
	KVMEmulated KVMKind = "emulated"
	// KVMHardware: guest code runs at hardware-assisted speed (bare-metal
	// KVM, or KVM inside a VM with nested virtualization such as the
	// nested lab's L1). ktstr-boot can boot Linux on it.
	KVMHardware KVMKind = "hardware"
)

// KVMProbe is the probe's decision and the evidence for it.
type KVMProbe struct {
	Kind KVMKind
	// Rate is the measured guest loop speed in iterations per second.
	Rate float64
	// Hypervisor is true when this machine is itself a VM (CPUID's
	// hypervisor bit, from /proc/cpuinfo).
	Hypervisor bool
	// Reason says why, in one line.
	Reason string
}

// HardwareRate is the loop speed (iterations of dec/jnz per second) from
// which /dev/kvm counts as hardware-assisted. Measured: the emulated
// /dev/kvm of this project's machines runs 1.4 M/s; KVM in the nested
// lab's L1 (nested SVM under TCG) runs about 100 M/s; bare-metal KVM runs
// 1000 M/s or more.
const HardwareRate = 20e6

// ProbeKVM decides whether /dev/kvm (or dev, when not empty) runs guests
// at hardware-assisted speed, by timing a tiny real-mode guest loop
// through the KVM ioctls. It takes well under a second on either kind.
func ProbeKVM(dev string) KVMProbe {
	if dev == "" {
		dev = "/dev/kvm"
	}
	p := KVMProbe{Kind: KVMNone}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		p.Hypervisor = strings.Contains(string(b), " hypervisor")
	}
	// A first short run tells the emulation apart without waiting for it;
	// a longer one measures hardware speed above the entry overhead.
	short, err := timeKVMLoop(dev, 100_000)
	if err != nil {
		p.Reason = err.Error()
		return p
	}
	p.Rate = 100_000 / short.Seconds()
	if short < 20*time.Millisecond {
		long, err := timeKVMLoop(dev, 20_000_000)
		if err != nil {
			p.Reason = err.Error()
			return p
		}
		p.Rate = 20_000_000 / long.Seconds()
	}
	vm := ""
	if p.Hypervisor {
		vm = " (this machine is a VM: nested virtualization)"
	}
	if p.Rate >= HardwareRate {
		p.Kind = KVMHardware
		p.Reason = fmt.Sprintf("%s runs a guest loop at %.0f M iterations/s (>= %.0f M/s): hardware-assisted KVM%s; ktstr-boot runs directly", dev, p.Rate/1e6, HardwareRate/1e6, vm)
	} else {
		p.Kind = KVMEmulated
		p.Reason = fmt.Sprintf("%s runs a guest loop at %.1f M iterations/s (< %.0f M/s): a software emulation that cannot boot Linux; use the nested lab", dev, p.Rate/1e6, HardwareRate/1e6)
	}
	return p
}

func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	r, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, arg)
	if e != 0 {
		return r, e
	}
	return r, nil
}

// timeKVMLoop runs "mov ecx, n; 1: dec ecx; jnz 1b; hlt" in a real-mode
// guest and returns the time KVM_RUN took.
func timeKVMLoop(dev string, n uint32) (time.Duration, error) {
	kvm, err := syscall.Open(dev, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer syscall.Close(kvm)
	if v, err := ioctl(kvm, kvmGetAPIVersion, 0); err != nil || v != 12 {
		return 0, fmt.Errorf("%s: KVM API version %d, %v (want 12)", dev, v, err)
	}
	vmfd, err := ioctl(kvm, kvmCreateVM, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: KVM_CREATE_VM: %w", dev, err)
	}
	vm := int(vmfd)
	defer syscall.Close(vm)
	ioctl(vm, kvmSetTSSAddr, 0xfffbd000) // Intel real mode needs it; harmless on AMD
	mem, err := syscall.Mmap(-1, 0, 0x10000, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("mmap guest memory: %w", err)
	}
	defer syscall.Munmap(mem)
	code := []byte{0x66, 0xB9, 0, 0, 0, 0, 0x66, 0x49, 0x75, 0xFC, 0xF4}
	binary.LittleEndian.PutUint32(code[2:], n)
	copy(mem[0x1000:], code)
	region := struct {
		slot, flags                uint32
		guestPhys, size, userspace uint64
	}{0, 0, 0, 0x10000, uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctl(vm, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return 0, fmt.Errorf("%s: KVM_SET_USER_MEMORY_REGION: %w", dev, err)
	}
	cpufd, err := ioctl(vm, kvmCreateVCPU, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: KVM_CREATE_VCPU: %w", dev, err)
	}
	cpu := int(cpufd)
	defer syscall.Close(cpu)
	sz, err := ioctl(kvm, kvmGetVCPUMmapSize, 0)
	if err != nil || sz < 12 {
		return 0, fmt.Errorf("%s: KVM_GET_VCPU_MMAP_SIZE: %d %v", dev, sz, err)
	}
	run, err := syscall.Mmap(cpu, 0, int(sz), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer syscall.Munmap(run)
	var sregs [312]byte
	if _, err := ioctl(cpu, kvmGetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return 0, fmt.Errorf("%s: KVM_GET_SREGS: %w", dev, err)
	}
	// struct kvm_segment cs is first: base u64, limit u32, selector u16.
	binary.LittleEndian.PutUint64(sregs[0:], 0)
	binary.LittleEndian.PutUint16(sregs[12:], 0)
	if _, err := ioctl(cpu, kvmSetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return 0, fmt.Errorf("%s: KVM_SET_SREGS: %w", dev, err)
	}
	var regs [18]uint64 // rax..r15, rip, rflags
	regs[16], regs[17] = 0x1000, 2
	if _, err := ioctl(cpu, kvmSetRegs, uintptr(unsafe.Pointer(&regs[0]))); err != nil {
		return 0, fmt.Errorf("%s: KVM_SET_REGS: %w", dev, err)
	}
	start := time.Now()
	for i := 0; i < 100; i++ {
		if _, err := ioctl(cpu, kvmRun, 0); err != nil && err != syscall.EINTR {
			return 0, fmt.Errorf("%s: KVM_RUN: %w", dev, err)
		}
		if r := binary.LittleEndian.Uint32(run[8:]); r == kvmExitHLT {
			return time.Since(start), nil
		} else if r != 0 && r != 10 { // KVM_EXIT_UNKNOWN(0) after EINTR, KVM_EXIT_INTR(10)
			return 0, fmt.Errorf("%s: the probe guest exited with reason %d instead of hlt", dev, r)
		}
	}
	return 0, fmt.Errorf("%s: the probe guest never reached hlt", dev)
}
