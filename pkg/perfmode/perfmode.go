package perfmode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/cpupin"

	"golang.org/x/sys/unix"
)

// HugePageSize is the huge page size perf mode backs guest memory with.
const HugePageSize = 2 << 20

// KVM's exit-disabling capability (KVM_CAP_X86_DISABLE_EXITS) and its bits
// (KVM_X86_DISABLE_EXITS_*), from linux/kvm.h.
const (
	CapX86DisableExits  = 143
	DisableExitsMWAIT   = 1 << 0
	DisableExitsHLT     = 1 << 1
	DisableExitsPAUSE   = 1 << 2
	DisableExitsCState  = 1 << 3
	DisableExitsWanted  = DisableExitsMWAIT | DisableExitsHLT | DisableExitsPAUSE | DisableExitsCState
	KVMHintsRealtimeBit = 1 << 0 // CPUID 0x40000001 EDX: vCPUs never preempted
	CPUIDKVMFeatures    = 0x40000001
)

// FIFOPriority is the SCHED_FIFO priority of vCPU threads.
const FIFOPriority = 1

// Host is what Plan needs to know about the host. ReadHost fills it in;
// tests build it by hand.
type Host struct {
	// Allowed is the CPUs this process may run on (sched_getaffinity).
	Allowed []int
	// Reserved is KTSTR_CPUS (from ktstr-hostlock) when set, else nil.
	Reserved []int
	// FreeHugePages is the number of free 2 MiB pages.
	FreeHugePages uint64
	// HugePagesKnown is false when the kernel has no 2 MiB hugetlb pool.
	HugePagesKnown bool
	// CanFIFO says whether the process may use SCHED_FIFO (root,
	// CAP_SYS_NICE or RLIMIT_RTPRIO >= FIFOPriority).
	CanFIFO bool
}

// Plan is a checked perf-mode assignment.
type Plan struct {
	// VCPUCPU[i] is the host CPU vCPU i runs on, alone.
	VCPUCPU []int
	// Service is the CPUs left over for ktstr-boot's other threads
	// (console, stream); empty when every CPU went to a vCPU.
	Service []int
	// MemoryBytes is the guest memory, a multiple of HugePageSize.
	MemoryBytes uint64
}

// Check plans perf mode for vcpus vCPUs and mem bytes of guest memory.
func Check(h Host, vcpus int, mem uint64) (*Plan, error) {
	pool, from := h.Allowed, "this process's CPU affinity"
	if h.Reserved != nil {
		pool, from = intersect(h.Reserved, h.Allowed), "KTSTR_CPUS"
		if len(pool) < len(h.Reserved) {
			return nil, fmt.Errorf("--perf-mode: KTSTR_CPUS has CPUs this process may not run on (allowed: %s)", cpusText(h.Allowed))
		}
	}
	if vcpus > len(pool) {
		return nil, fmt.Errorf("--perf-mode: %d vCPUs need %d dedicated host CPUs, but %s offers only %d (%s); use fewer vCPUs, reserve more CPUs (ktstr-hostlock --cpus), or drop --perf-mode",
			vcpus, vcpus, from, len(pool), cpusText(pool))
	}
	if mem%HugePageSize != 0 {
		return nil, fmt.Errorf("--perf-mode: guest memory %d bytes is not a multiple of 2 MiB huge pages", mem)
	}
	need := mem / HugePageSize
	if !h.HugePagesKnown {
		return nil, fmt.Errorf("--perf-mode: this kernel has no 2 MiB huge page pool (/sys/kernel/mm/hugepages/hugepages-2048kB); drop --perf-mode")
	}
	if h.FreeHugePages < need {
		return nil, fmt.Errorf("--perf-mode: guest memory needs %d free 2 MiB huge pages, the host has %d free; raise /proc/sys/vm/nr_hugepages by %d, use less --memory, or drop --perf-mode",
			need, h.FreeHugePages, need-h.FreeHugePages)
	}
	if !h.CanFIFO {
		return nil, fmt.Errorf("--perf-mode: SCHED_FIFO vCPU threads need root, CAP_SYS_NICE or an RLIMIT_RTPRIO of at least %d", FIFOPriority)
	}
	return &Plan{VCPUCPU: append([]int(nil), pool[:vcpus]...), Service: append([]int(nil), pool[vcpus:]...), MemoryBytes: mem}, nil
}

func intersect(a, b []int) []int {
	in := map[int]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []int
	for _, x := range a {
		if in[x] {
			out = append(out, x)
		}
	}
	return out
}

// ReadHost reads the host's side of perf mode. reserved is KTSTR_CPUS as
// already parsed, or nil when it is unset.
func ReadHost(reserved []int) (Host, error) {
	h := Host{Reserved: reserved}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return h, fmt.Errorf("sched_getaffinity: %w", err)
	}
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			h.Allowed = append(h.Allowed, i)
		}
	}
	n, err := readUint(filepath.Join(hugeDir, "free_hugepages"))
	switch {
	case err == nil:
		h.FreeHugePages, h.HugePagesKnown = n, true
	case !errors.Is(err, os.ErrNotExist):
		return h, err
	}
	h.CanFIFO = canFIFO()
	return h, nil
}

const hugeDir = "/sys/kernel/mm/hugepages/hugepages-2048kB"

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// canFIFO reports whether SCHED_FIFO is allowed: root or CAP_SYS_NICE
// (checked through the effective capability set) or RLIMIT_RTPRIO.
func canFIFO() bool {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl) == nil && rl.Cur >= FIFOPriority {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return os.Geteuid() == 0
	}
	return data[0].Effective&(1<<unix.CAP_SYS_NICE) != 0
}

// PinFIFO pins the calling OS thread to cpu and makes it SCHED_FIFO at
// FIFOPriority. The caller must have locked the goroutine to its thread.
func PinFIFO(cpu int) error {
	if err := cpupin.Thread([]int{cpu}); err != nil {
		return fmt.Errorf("pin vCPU thread to CPU %d: %w", cpu, err)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: FIFOPriority}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("make vCPU thread on CPU %d SCHED_FIFO: %w", cpu, err)
	}
	return nil
}

// Pin confines the calling OS thread to cpus (service threads).
func Pin(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	return cpupin.Thread(cpus)
}

// HugeMemfd creates a memory file of size bytes backed by 2 MiB huge
// pages and faults every page in, so a shortfall shows now as an error,
// not later as a SIGBUS in the middle of a run.
func HugeMemfd(name string, size uint64) (int, error) {
	if size == 0 || size%HugePageSize != 0 {
		return -1, fmt.Errorf("huge-page memory of %d bytes is not a positive multiple of 2 MiB", size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_HUGETLB|unix.MFD_HUGE_2MB)
	if err != nil {
		return -1, fmt.Errorf("memfd_create with MFD_HUGETLB: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("size huge-page memory to %d bytes: %w", size, err)
	}
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("reserve %d huge pages: %w (are enough free? see /proc/meminfo HugePages_Free)", size/HugePageSize, err)
	}
	return fd, nil
}

// cpusText is a CPU set for messages: its kernel list form, or "none".
func cpusText(cpus []int) string {
	if len(cpus) == 0 {
		return "none"
	}
	return cpulist.Format(cpus)
}
