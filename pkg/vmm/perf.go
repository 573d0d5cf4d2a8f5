package vmm

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/cpupin"
	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/perfmode"
)

// Performance mode (Config.Perf): guest RAM on 2 MiB huge pages faulted in
// up front, the KVM exits perfmode.DisableExitsWanted names turned off
// where this KVM allows, KVM_HINTS_REALTIME in CPUID, and each vCPU thread
// SCHED_FIFO on its own host CPU. perfmode.Check has already refused hosts
// that cannot supply the CPUs, pages or priority.

// newHugeMemory is newMemory on huge pages.
func newHugeMemory(size uint64) (*guestmem.Memory, error) {
	if size < MinMemory {
		return nil, fmt.Errorf("guest memory %d bytes is below the %d MiB minimum", size, MinMemory>>20)
	}
	fd, err := perfmode.HugeMemfd("ktstr-guest-ram", size)
	if err != nil {
		return nil, err
	}
	m, err := guestmem.MapMemfd(fd, size, Layout(size), unix.MAP_POPULATE, true)
	if err != nil {
		return nil, fmt.Errorf("huge-page guest memory: %w", err)
	}
	return m, nil
}

// disableExits turns off the exits perf mode does not want, as far as this
// KVM offers; it must run before the vCPUs exist. It returns what it did,
// for the log.
func disableExits(vm *kvm.VM, sys *kvm.System) (string, error) {
	offered := uint64(sys.CheckExtension(kvm.CapX86DisableExits))
	mask := offered & perfmode.DisableExitsWanted
	if mask == 0 {
		return "this KVM lets no exits be disabled", nil
	}
	if err := vm.EnableCap(kvm.CapX86DisableExits, mask); err != nil {
		return "", fmt.Errorf("disable HLT/PAUSE/MWAIT exits: %w", err)
	}
	var names []string
	for _, b := range []struct {
		bit  uint64
		name string
	}{{perfmode.DisableExitsHLT, "HLT"}, {perfmode.DisableExitsPAUSE, "PAUSE"}, {perfmode.DisableExitsMWAIT, "MWAIT"}, {perfmode.DisableExitsCState, "C-state"}} {
		if mask&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return "disabled " + strings.Join(names, ", ") + " exits", nil
}

// placeVCPU confines the calling thread for vCPU i: in perf mode to its
// own CPU at SCHED_FIFO, else to its KTSTR_CPUS CPU (cfg.CPUs) when set.
func (m *machine) placeVCPU(i int) error {
	if p := m.cfg.Perf; p != nil {
		if i >= len(p.VCPUCPU) {
			return fmt.Errorf("perf plan has %d CPUs for vCPU %d", len(p.VCPUCPU), i)
		}
		return perfmode.PinFIFO(p.VCPUCPU[i])
	}
	if len(m.cfg.CPUs) > 0 {
		if err := cpupin.Thread([]int{cpupin.For(m.cfg.CPUs, i)}); err != nil {
			return fmt.Errorf("pin vCPU %d to its KTSTR_CPUS CPU: %w", i, err)
		}
	}
	return nil
}

// capHaltPoll is KVM_CAP_HALT_POLL: the VM's halt-polling window in ns.
const capHaltPoll = 182

// noHaltPollWhenOversubscribed turns KVM's halt polling off when there are
// more vCPUs than host CPUs this process may use: a halted vCPU that
// busy-polls then only steals the CPU another vCPU needs. It reports
// whether it did.
func noHaltPollWhenOversubscribed(vm *kvm.VM, sys *kvm.System, vcpus int) bool {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil || vcpus <= set.Count() {
		return false
	}
	if sys.CheckExtension(capHaltPoll) == 0 {
		return false
	}
	return vm.EnableCap(capHaltPoll, 0) == nil
}
