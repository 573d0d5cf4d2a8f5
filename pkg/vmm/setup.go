package vmm

import (
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Set-up phases, in the order ktstr-boot goes through them (the names in
// the vm_start frame's setup_phases; man/ktstr-stream.5).
const (
	PhaseArgs          = "args"           // flags, the kernel's path, sizes
	PhaseOpenInputs    = "open_inputs"    // open the kernel and initramfs, parse the setup header
	PhaseConfig        = "config"         // host CPUs, VMM choice, command line, outputs
	PhaseOpenKVM       = "open_kvm"       // open /dev/kvm, check its capabilities
	PhaseMapMemory     = "map_memory"     // guest RAM memfd and mmap
	PhaseCreateVM      = "create_vm"      // KVM_CREATE_VM, TSS, irqchip, PIT, memory slots
	PhaseLoadKernel    = "load_kernel"    // concurrent: the protected-mode kernel into guest RAM
	PhaseLoadInitramfs = "load_initramfs" // concurrent: the initramfs into guest RAM
	PhaseBootTables    = "boot_tables"    // concurrent: command line, zero page, page tables, GDT, MP and ACPI tables
	PhaseDevices       = "devices"        // serial ports, i8042, RTC, virtio console, irqfds
	PhaseVCPUs         = "vcpus"          // create the vCPUs, CPUID, registers
	PhaseLoadWait      = "load_wait"      // wait for the loading, which ran beside the KVM steps
	PhaseStart         = "start"          // control FIFO; what is left before the first KVM_RUN
)

// SetupClock times ktstr-boot's set-up, from process start to the moment
// the vCPUs are released into their first KVM_RUN, as named phases. Each
// Mark ends the phase running since the previous Mark (or since start), so
// the marked phases add up to Total; phases added with AddConcurrent ran
// beside them.
// A nil *SetupClock ignores Marks, so code shared with tests need not
// care whether it is timed.
type SetupClock struct {
	start, last time.Time
	phases      []wire.SetupPhase
}

// NewSetupClock starts a clock at start (the process's start, as main
// saw it).
func NewSetupClock(start time.Time) *SetupClock {
	return &SetupClock{start: start, last: start}
}

// Mark ends the current phase and names it.
func (c *SetupClock) Mark(name string) {
	if c == nil {
		return
	}
	now := time.Now()
	c.phases = append(c.phases, wire.SetupPhase{Name: name, NS: uint64(now.Sub(c.last))})
	c.last = now
}

// Add records a phase timed elsewhere (d long), without ending the
// current one: for a clock whose phases are all reported as concurrent
// (the loader's), where one step ran beside the marked ones.
func (c *SetupClock) Add(name string, d time.Duration) {
	if c == nil {
		return
	}
	c.phases = append(c.phases, wire.SetupPhase{Name: name, NS: uint64(d)})
}

// AddConcurrent records phases that ran on another goroutine beside the
// marked ones (the guest's loading): they are listed with Concurrent set
// and are not part of the sum that makes Total.
func (c *SetupClock) AddConcurrent(phases []wire.SetupPhase) {
	if c == nil {
		return
	}
	for _, p := range phases {
		p.Concurrent = true
		c.phases = append(c.phases, p)
	}
}

// Phases returns the phases marked so far, in order.
func (c *SetupClock) Phases() []wire.SetupPhase {
	if c == nil {
		return nil
	}
	return append([]wire.SetupPhase(nil), c.phases...)
}

// Total is the time from start to the last Mark.
func (c *SetupClock) Total() time.Duration {
	if c == nil {
		return 0
	}
	return c.last.Sub(c.start)
}
