package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DevicePath is where the KVM device node lives.
const DevicePath = "/dev/kvm"

// APIVersion is the only KVM API version Linux has ever shipped.
const APIVersion = 12

func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if e == unix.EINTR && req != kvmRun {
			continue
		}
		if e != 0 {
			return r, e
		}
		return r, nil
	}
}

// System is an open /dev/kvm.
type System struct {
	fd       int
	mmapSize int
}

// Open opens /dev/kvm and checks the API version.
func Open() (*System, error) { return OpenPath(DevicePath) }

// OpenPath is Open on another device node (a test's, or a probe's).
func OpenPath(dev string) (*System, error) {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	s := &System{fd: fd}
	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("KVM API version %d, want %d", v, APIVersion)
	}
	n, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	if n < runMinSize {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE says %d bytes, less than kvm_run needs", n)
	}
	s.mmapSize = int(n)
	return s, nil
}

// Close closes the system fd.
func (s *System) Close() error { return unix.Close(s.fd) }

// CheckExtension returns KVM_CHECK_EXTENSION's answer for cap (0: absent).
func (s *System) CheckExtension(cap int) int {
	r, err := ioctl(s.fd, kvmCheckExtension, uintptr(cap))
	if err != nil {
		return 0
	}
	return int(r)
}

// SupportedCPUID returns KVM_GET_SUPPORTED_CPUID.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	for n := 128; n <= 4096; n *= 2 {
		buf := make([]byte, 8+n*int(unsafe.Sizeof(CPUIDEntry{})))
		binary.LittleEndian.PutUint32(buf, uint32(n))
		_, err := ioctl(s.fd, kvmGetSupportedCPUID, uintptr(unsafe.Pointer(&buf[0])))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
		}
		got := int(binary.LittleEndian.Uint32(buf))
		if got > n {
			return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID returned %d entries for a %d-entry buffer", got, n)
		}
		out := make([]CPUIDEntry, got)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(out)*int(unsafe.Sizeof(CPUIDEntry{}))), buf[8:])
		return out, nil
	}
	return nil, errors.New("KVM_GET_SUPPORTED_CPUID: more than 4096 entries")
}

// CreateVM issues KVM_CREATE_VM (retrying on EINTR).
func (s *System) CreateVM() (*VM, error) {
	fd, err := ioctl(s.fd, kvmCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	unix.CloseOnExec(int(fd))
	return &VM{fd: int(fd), sys: s}, nil
}

// VM is a KVM virtual machine fd.
type VM struct {
	fd  int
	sys *System
}

// FD returns the VM's file descriptor.
func (vm *VM) FD() int { return vm.fd }

// Close closes the VM fd.
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// SetTSSAddr issues KVM_SET_TSS_ADDR (three pages at addr, Intel only but
// harmless elsewhere).
func (vm *VM) SetTSSAddr(addr uint64) error {
	if _, err := ioctl(vm.fd, kvmSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR %#x: %w", addr, err)
	}
	return nil
}

// SetIdentityMapAddr issues KVM_SET_IDENTITY_MAP_ADDR.
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	a := addr
	if _, err := ioctl(vm.fd, kvmSetIdentityMapAddr, uintptr(unsafe.Pointer(&a))); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR %#x: %w", addr, err)
	}
	return nil
}

// CreateIRQChip issues KVM_CREATE_IRQCHIP (PIC, IOAPIC and LAPICs in kernel).
func (vm *VM) CreateIRQChip() error {
	if _, err := ioctl(vm.fd, kvmCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// CreatePIT2 issues KVM_CREATE_PIT2 with the speaker port dummy.
func (vm *VM) CreatePIT2() error {
	c := pitConfig{Flags: 1} // KVM_PIT_SPEAKER_DUMMY
	if _, err := ioctl(vm.fd, kvmCreatePIT2, uintptr(unsafe.Pointer(&c))); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// SetUserMemoryRegion issues KVM_SET_USER_MEMORY_REGION.
func (vm *VM) SetUserMemoryRegion(r UserspaceMemoryRegion) error {
	if _, err := ioctl(vm.fd, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&r))); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d gpa %#x size %#x: %w", r.Slot, r.GuestPhysAddr, r.MemorySize, err)
	}
	return nil
}

// IRQLine issues KVM_IRQ_LINE.
func (vm *VM) IRQLine(irq uint32, level bool) error {
	l := irqLevel{IRQ: irq}
	if level {
		l.Level = 1
	}
	if _, err := ioctl(vm.fd, kvmIRQLine, uintptr(unsafe.Pointer(&l))); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE %d: %w", irq, err)
	}
	return nil
}

// IRQFD binds eventfd efd to interrupt line gsi (KVM_IRQFD).
func (vm *VM) IRQFD(efd int, gsi uint32) error {
	a := irqfd{FD: uint32(efd), GSI: gsi}
	if _, err := ioctl(vm.fd, kvmIRQFD, uintptr(unsafe.Pointer(&a))); err != nil {
		return fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return nil
}

// IOEventFD makes guest writes of length n to addr (MMIO, or a port when
// pio) signal efd instead of exiting to userspace (KVM_IOEVENTFD).
// When match is non-nil only writes of that value signal efd.
func (vm *VM) IOEventFD(efd int, addr uint64, n uint32, pio bool, match *uint64) error {
	a := ioeventfd{Addr: addr, Len: n, FD: int32(efd)}
	if pio {
		a.Flags |= ioeventfdFlagPIO
	}
	if match != nil {
		a.Flags |= ioeventfdFlagDatamatch
		a.Datamatch = *match
	}
	if _, err := ioctl(vm.fd, kvmIOEventFD, uintptr(unsafe.Pointer(&a))); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD %#x: %w", addr, err)
	}
	return nil
}

// CreateVCPU issues KVM_CREATE_VCPU and maps its kvm_run area.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctl(vm.fd, kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	unix.CloseOnExec(int(fd))
	run, err := unix.Mmap(int(fd), 0, vm.sys.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("mmap kvm_run of vCPU %d: %w", id, err)
	}
	return &VCPU{ID: id, fd: int(fd), run: run}, nil
}

// VCPU is a KVM vCPU fd with its kvm_run area.
type VCPU struct {
	ID  int
	fd  int
	run []byte
}

// FD returns the vCPU's file descriptor.
func (c *VCPU) FD() int { return c.fd }

// Close unmaps kvm_run and closes the fd.
func (c *VCPU) Close() error {
	unix.Munmap(c.run)
	return unix.Close(c.fd)
}

func (c *VCPU) get(req uintptr, p unsafe.Pointer, what string) error {
	if _, err := ioctl(c.fd, req, uintptr(p)); err != nil {
		return fmt.Errorf("%s on vCPU %d: %w", what, c.ID, err)
	}
	return nil
}

// Regs returns KVM_GET_REGS.
func (c *VCPU) Regs() (Regs, error) {
	var r Regs
	return r, c.get(kvmGetRegs, unsafe.Pointer(&r), "KVM_GET_REGS")
}

// SetRegs issues KVM_SET_REGS.
func (c *VCPU) SetRegs(r Regs) error {
	return c.get(kvmSetRegs, unsafe.Pointer(&r), "KVM_SET_REGS")
}

// Sregs returns KVM_GET_SREGS.
func (c *VCPU) Sregs() (Sregs, error) {
	var s Sregs
	return s, c.get(kvmGetSregs, unsafe.Pointer(&s), "KVM_GET_SREGS")
}

// SetSregs issues KVM_SET_SREGS.
func (c *VCPU) SetSregs(s Sregs) error {
	return c.get(kvmSetSregs, unsafe.Pointer(&s), "KVM_SET_SREGS")
}

// FPU returns KVM_GET_FPU.
func (c *VCPU) FPU() (FPU, error) {
	var f FPU
	return f, c.get(kvmGetFPU, unsafe.Pointer(&f), "KVM_GET_FPU")
}

// SetFPU issues KVM_SET_FPU.
func (c *VCPU) SetFPU(f FPU) error {
	return c.get(kvmSetFPU, unsafe.Pointer(&f), "KVM_SET_FPU")
}

// LAPIC returns KVM_GET_LAPIC.
func (c *VCPU) LAPIC() (LAPICState, error) {
	var l LAPICState
	return l, c.get(kvmGetLAPIC, unsafe.Pointer(&l), "KVM_GET_LAPIC")
}

// SetLAPIC issues KVM_SET_LAPIC.
func (c *VCPU) SetLAPIC(l LAPICState) error {
	return c.get(kvmSetLAPIC, unsafe.Pointer(&l), "KVM_SET_LAPIC")
}

// SetMPState issues KVM_SET_MP_STATE.
func (c *VCPU) SetMPState(state uint32) error {
	s := state
	return c.get(kvmSetMPState, unsafe.Pointer(&s), "KVM_SET_MP_STATE")
}

// SetCPUID2 issues KVM_SET_CPUID2 with entries.
func (c *VCPU) SetCPUID2(entries []CPUIDEntry) error {
	es := int(unsafe.Sizeof(CPUIDEntry{}))
	buf := make([]byte, 8+len(entries)*es)
	binary.LittleEndian.PutUint32(buf, uint32(len(entries)))
	if len(entries) > 0 {
		copy(buf[8:], unsafe.Slice((*byte)(unsafe.Pointer(&entries[0])), len(entries)*es))
	}
	return c.get(kvmSetCPUID2, unsafe.Pointer(&buf[0]), "KVM_SET_CPUID2")
}

func msrBuf(entries []MSREntry) []byte {
	es := int(unsafe.Sizeof(MSREntry{}))
	buf := make([]byte, 8+len(entries)*es)
	binary.LittleEndian.PutUint32(buf, uint32(len(entries)))
	if len(entries) > 0 {
		copy(buf[8:], unsafe.Slice((*byte)(unsafe.Pointer(&entries[0])), len(entries)*es))
	}
	return buf
}

// SetMSRs issues KVM_SET_MSRS; it fails unless every entry was set.
func (c *VCPU) SetMSRs(entries []MSREntry) error {
	buf := msrBuf(entries)
	n, err := ioctl(c.fd, kvmSetMSRs, uintptr(unsafe.Pointer(&buf[0])))
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS on vCPU %d: %w", c.ID, err)
	}
	if int(n) != len(entries) {
		return fmt.Errorf("KVM_SET_MSRS on vCPU %d: MSR %#x refused", c.ID, entries[n].Index)
	}
	return nil
}

// MSRs reads the MSRs named by the indexes in entries (KVM_GET_MSRS).
func (c *VCPU) MSRs(entries []MSREntry) error {
	buf := msrBuf(entries)
	n, err := ioctl(c.fd, kvmGetMSRs, uintptr(unsafe.Pointer(&buf[0])))
	if err != nil {
		return fmt.Errorf("KVM_GET_MSRS on vCPU %d: %w", c.ID, err)
	}
	es := int(unsafe.Sizeof(MSREntry{}))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&entries[0])), len(entries)*es), buf[8:])
	if int(n) != len(entries) {
		return fmt.Errorf("KVM_GET_MSRS on vCPU %d: MSR %#x unreadable", c.ID, entries[n].Index)
	}
	return nil
}

// Run issues KVM_RUN once. It returns unix.EINTR (unwrapped) when a signal
// or immediate_exit interrupted it.
func (c *VCPU) Run() error {
	_, err := ioctl(c.fd, kvmRun, 0)
	return err
}

// SetImmediateExit sets kvm_run.immediate_exit, which makes the next (or a
// racing) KVM_RUN return EINTR at once.
func (c *VCPU) SetImmediateExit(v bool) {
	var b byte
	if v {
		b = 1
	}
	(*[1]byte)(unsafe.Pointer(&c.run[runImmediateExit]))[0] = b
}

// ExitReason returns kvm_run.exit_reason.
func (c *VCPU) ExitReason() uint32 { return binary.LittleEndian.Uint32(c.run[runExitReason:]) }

// IO describes a KVM_EXIT_IO. Data is the slice of kvm_run holding
// Size*Count bytes to read (OUT) or fill (IN).
type IO struct {
	Port  uint16
	Size  int
	Count int
	Out   bool
	Data  []byte
}

// IOExit decodes the io member of kvm_run; ok is false when its data
// offset or size does not fit the mapping (never trusted blindly).
func (c *VCPU) IOExit() (IO, bool) {
	r := c.run
	x := IO{
		Out:   r[runIODirection] == IOOut,
		Size:  int(r[runIOSize]),
		Port:  binary.LittleEndian.Uint16(r[runIOPort:]),
		Count: int(binary.LittleEndian.Uint32(r[runIOCount:])),
	}
	off := binary.LittleEndian.Uint64(r[runIODataOffset:])
	n := uint64(x.Size) * uint64(x.Count)
	if off > uint64(len(r)) || n > uint64(len(r))-off {
		return x, false
	}
	x.Data = r[off : off+n]
	return x, true
}

// MMIO describes a KVM_EXIT_MMIO. Data is the slice of kvm_run holding Len
// bytes to read (write access) or fill (read access).
type MMIO struct {
	Addr  uint64
	Write bool
	Data  []byte
}

// MMIOExit decodes the mmio member of kvm_run.
func (c *VCPU) MMIOExit() MMIO {
	r := c.run
	n := binary.LittleEndian.Uint32(r[runMMIOLen:])
	if n > 8 {
		n = 8
	}
	return MMIO{
		Addr:  binary.LittleEndian.Uint64(r[runMMIOPhys:]),
		Write: r[runMMIOIsWrite] != 0,
		Data:  r[runMMIOData : runMMIOData+int(n)],
	}
}

// SystemEventType returns kvm_run.system_event.type.
func (c *VCPU) SystemEventType() uint32 { return binary.LittleEndian.Uint32(c.run[runSysEventType:]) }

// FailEntryReason returns kvm_run.fail_entry.hardware_entry_failure_reason.
func (c *VCPU) FailEntryReason() uint64 { return binary.LittleEndian.Uint64(c.run[runFailReason:]) }

// InternalError returns kvm_run.internal's suberror and data words.
func (c *VCPU) InternalError() (uint32, []uint64) {
	sub := binary.LittleEndian.Uint32(c.run[runInternalSuberror:])
	n := int(binary.LittleEndian.Uint32(c.run[runInternalNData:]))
	if n > 16 {
		n = 16
	}
	d := make([]uint64, n)
	for i := range d {
		d[i] = binary.LittleEndian.Uint64(c.run[runInternalData+8*i:])
	}
	return sub, d
}

// StatsFD returns a KVM_GET_STATS_FD file for the vCPU (Linux 5.15+).
func (c *VCPU) StatsFD() (*os.File, error) {
	fd, err := ioctl(c.fd, kvmGetStatsFD, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_STATS_FD on vCPU %d: %w", c.ID, err)
	}
	return os.NewFile(fd, fmt.Sprintf("kvm-vcpu-%d-stats", c.ID)), nil
}

// StatsFD returns a KVM_GET_STATS_FD file for the VM.
func (vm *VM) StatsFD() (*os.File, error) {
	fd, err := ioctl(vm.fd, kvmGetStatsFD, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_STATS_FD on the VM: %w", err)
	}
	return os.NewFile(fd, "kvm-vm-stats"), nil
}
