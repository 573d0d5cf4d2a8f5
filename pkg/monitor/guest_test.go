package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kernelsym"
)

// synthetic is a hand-built guest: a kernel image moved by KASLR in both
// physical and virtual space, page tables, two CPUs' runqueues (one per-CPU
// area in the direct map, one in vmalloc space reachable only through the
// page tables), tasks and sched_ext globals.
type synthetic struct {
	t          testing.TB
	ram        []byte
	k          *kernelsym.Kernel
	physDelta  uint64
	virtDelta  uint64
	pageOffset uint64
	levels     int
	nextTable  uint64
	root       uint64
	vbase      uint64 // CPU 1's per-CPU area (vmalloc)
}

const (
	synBanner   = 0xffffffff82000100
	synPhysBase = 0xffffffff82001000
	synPOB      = 0xffffffff82001008
	synL5       = 0xffffffff82001010
	synNrCPU    = 0xffffffff82001018
	synPCPU     = 0xffffffff82001100
	synState    = 0xffffffff82002000
	synWatchdog = 0xffffffff82002008
	synExitKind = 0xffffffff82002010
	synExitInfo = 0xffffffff82002018
	synWDStamp  = 0xffffffff82002020
	synJiffies  = 0xffffffff82002028
	synOps      = 0xffffffff82002100
	synInitTask = 0xffffffff82003000
	synTopPgt   = 0xffffffff82010000
	synRunq     = 0x2fb00
)

var synLayout = kernelsym.Layout{
	RqSize:         0x600,
	RqNrRunning:    kernelsym.Field{Off: 4, Size: 4},
	RqClock:        kernelsym.Field{Off: 0x4fc, Size: 8}, // straddles CPU 1's page boundary
	RqCurr:         kernelsym.Field{Off: 0x508, Size: 8},
	RqScxNrRunning: kernelsym.Field{Off: 0x520, Size: 4},
	RqScxLocalNr:   kernelsym.Field{Off: 0x524, Size: 4},
	TaskPID:        kernelsym.Field{Off: 0x40, Size: 4},
	TaskComm:       kernelsym.Field{Off: 0x80, Size: 16},
	OpsName:        kernelsym.Field{Off: 0x10, Size: 128},
	ExitInfoKind:   kernelsym.Field{Off: 0, Size: 4},
	EnableStates:   map[int64]string{0: "SCX_OPS_ENABLING", 1: "SCX_OPS_ENABLED", 2: "SCX_OPS_DISABLING", 3: "SCX_OPS_DISABLED"},
	ExitKinds:      map[int64]string{0: "SCX_EXIT_NONE", 1: "SCX_EXIT_DONE", 64: "SCX_EXIT_UNREG", 1025: "SCX_EXIT_ERROR_BPF", 1026: "SCX_EXIT_ERROR_STALL"},
}

func newSynthetic(t testing.TB, levels int) *synthetic {
	s := &synthetic{t: t, ram: make([]byte, 96<<20), physDelta: 0x2000000, virtDelta: 0x10000000, levels: levels}
	s.k = &kernelsym.Kernel{
		Symbols: kernelsym.Symbols{"linux_banner": synBanner, "phys_base": synPhysBase, "page_offset_base": synPOB,
			"__pgtable_l5_enabled": synL5, "nr_cpu_ids": synNrCPU, "__per_cpu_offset": synPCPU, "init_top_pgt": synTopPgt,
			"runqueues": synRunq, "scx_ops_enable_state_var": synState, "scx_watchdog_timeout": synWatchdog,
			"scx_exit_kind": synExitKind, "scx_exit_info": synExitInfo, "scx_ops": synOps,
			"scx_watchdog_timestamp": synWDStamp, "jiffies": synJiffies},
		Banner:        []byte("Linux version 6.12.0-synthetic (test@ktstr) #1 SMP\n\x00"),
		HZ:            1000,
		PhysicalAlign: 0x200000,
		Layout:        &synLayout,
	}
	s.pageOffset, s.vbase = 0xffff888000000000, 0xffffc90000000000
	if levels == 5 {
		s.pageOffset, s.vbase = 0xff11000000000000, 0xffa0000000000000
	}
	copy(s.ram[s.pa(synBanner):], s.k.Banner)
	s.put64(s.pa(synPhysBase), s.physDelta-s.virtDelta)
	s.put64(s.pa(synPOB), s.pageOffset)
	if levels == 5 {
		s.put32(s.pa(synL5), 1)
	}
	s.put32(s.pa(synNrCPU), 2)
	s.root = s.pa(synTopPgt)
	s.nextTable = s.root + 4096
	// CPU 0: per-CPU area in the direct map at PA 1 MiB.
	s.put64(s.pa(synPCPU), s.pageOffset+0x100000)
	// CPU 1: per-CPU area in vmalloc space, its two rq pages scattered.
	s.put64(s.pa(synPCPU)+8, s.vbase)
	s.mapPage(s.vbase+0x2f000, 0x200000)
	s.mapPage(s.vbase+0x30000, 0x300000)
	// The banner's page through the image mapping and the direct map.
	s.mapPage(s.va(synBanner)&^0xfff, s.pa(synBanner)&^0xfff)
	s.mapPage(s.pageOffset+s.pa(synBanner)&^0xfff, s.pa(synBanner)&^0xfff)
	return s
}

func (s *synthetic) pa(link uint64) uint64 { return link - kernelsym.StartKernelMap + s.physDelta }
func (s *synthetic) va(link uint64) uint64 { return link + s.virtDelta }
func (s *synthetic) put64(pa, v uint64)    { binary.LittleEndian.PutUint64(s.ram[pa:], v) }
func (s *synthetic) put32(pa uint64, v uint32) {
	binary.LittleEndian.PutUint32(s.ram[pa:], v)
}

func (s *synthetic) mapPage(va, pa uint64) {
	table := s.root
	for level := s.levels; level > 1; level-- {
		ea := table + ((va>>(12+9*(level-1)))&0x1ff)*8
		e := binary.LittleEndian.Uint64(s.ram[ea:])
		if e&1 == 0 {
			e = s.nextTable | 3
			s.nextTable += 4096
			s.put64(ea, e)
		}
		table = e & 0x000ffffffffff000
	}
	s.put64(table+((va>>12)&0x1ff)*8, pa|3)
}

// rqPA returns the guest-physical address of field off of CPU cpu's rq.
func (s *synthetic) rqPA(cpu int, off uint64) uint64 {
	if cpu == 0 {
		return 0x100000 + synRunq + off
	}
	va := s.vbase + synRunq + off
	if va >= s.vbase+0x30000 {
		return 0x300000 + va - (s.vbase + 0x30000)
	}
	return 0x200000 + va - (s.vbase + 0x2f000)
}

func (s *synthetic) setRq(cpu int, nr uint32, clock, curr uint64, scxNr, dsq uint32) {
	s.put32(s.rqPA(cpu, 4), nr)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], clock)
	for i := range b { // byte by byte: the field may straddle pages
		s.ram[s.rqPA(cpu, 0x4fc+uint64(i))] = b[i]
	}
	s.put64(s.rqPA(cpu, 0x508), curr)
	s.put32(s.rqPA(cpu, 0x520), scxNr)
	s.put32(s.rqPA(cpu, 0x524), dsq)
}

func (s *synthetic) setTask(pa uint64, pid int32, comm string) {
	s.put32(pa+0x40, uint32(pid))
	copy(s.ram[pa+0x80:pa+0x90], append([]byte(comm), 0))
}

func (s *synthetic) memory() *guestmem.Memory {
	m, err := guestmem.New(s.ram, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

func TestLocateAndSample(t *testing.T) {
	for _, levels := range []int{4, 5} {
		s := newSynthetic(t, levels)
		s.setTask(0x400000, 1234, "spin")
		s.setTask(s.pa(synInitTask), 0, "swapper/0")
		s.setRq(0, 3, 5_000_000_123, s.pageOffset+0x400000, 2, 1)
		s.setRq(1, 1, 7_000_000_456, s.va(synInitTask), 0, 0)
		s.put32(s.pa(synState), 1)
		s.put64(s.pa(synWatchdog), 5000)
		copy(s.ram[s.pa(synOps)+0x10:], "qmap\x00")

		g, err := Locate(s.memory(), s.k)
		if err != nil {
			t.Fatalf("%d-level: %v", levels, err)
		}
		if g.PhysDelta() != s.physDelta || g.VirtDelta() != s.virtDelta || g.PageOffset() != s.pageOffset || g.Levels() != levels || g.NrCPUs() != 2 {
			t.Fatalf("%d-level: located delta %#x/%#x page_offset %#x levels %d cpus %d", levels, g.PhysDelta(), g.VirtDelta(), g.PageOffset(), g.Levels(), g.NrCPUs())
		}
		sm := NewSampler(g, 0)
		ms, err := sm.Sample(42)
		if err != nil {
			t.Fatalf("%d-level: %v", levels, err)
		}
		if len(ms.CPUs) != 2 || ms.ElapsedNS != 42 {
			t.Fatalf("%+v", ms)
		}
		c0, c1 := ms.CPUs[0], ms.CPUs[1]
		if c0.NrRunning != 3 || c0.ClockNS != 5_000_000_123 || c0.CurrPID != 1234 || c0.CurrComm != "spin" || c0.ScxNrRun != 2 || c0.LocalDSQ != 1 {
			t.Errorf("%d-level cpu0 %+v", levels, c0)
		}
		if c1.NrRunning != 1 || c1.ClockNS != 7_000_000_456 || c1.CurrPID != 0 || c1.CurrComm != "swapper/0" {
			t.Errorf("%d-level cpu1 (vmalloc per-CPU area) %+v", levels, c1)
		}
		if ms.ScxState != "enabled" || ms.ScxOps != "qmap" || ms.WatchdogTimeout != 5e9 || ms.ScxExitKind != 0 {
			t.Errorf("%d-level scx %q %q %d %d", levels, ms.ScxState, ms.ScxOps, ms.WatchdogTimeout, ms.ScxExitKind)
		}

		// A short disabling window seen only by Watch: the kind is kept
		// for the next sample even though the kernel has moved on.
		s.put32(s.pa(synState), 2)
		s.put32(s.pa(synExitKind), 1025)
		sm.Watch()
		s.put32(s.pa(synState), 3)
		s.put32(s.pa(synExitKind), 1)
		ms, err = sm.Sample(43)
		if err != nil || ms.ScxState != "disabled" || ms.ScxExitKind != 1025 {
			t.Errorf("%d-level exit seen by Watch only: %+v %v", levels, ms, err)
		}
		// Enabled again: forgotten.
		s.put32(s.pa(synState), 1)
		sm.Watch()
		s.put32(s.pa(synState), 3)
		if ms, _ = sm.Sample(44); ms.ScxExitKind != 1 {
			t.Errorf("%d-level stale exit kind %d after re-enable", levels, ms.ScxExitKind)
		}

		// The scheduler dies of a stall: state disabled, exit kind reset
		// to DONE, the exit info keeps the real kind.
		s.put32(s.pa(synState), 3)
		s.put32(s.pa(synExitKind), 1)
		s.put64(s.pa(synExitInfo), s.pageOffset+0x500000)
		s.put32(0x500000, 1026)
		ms, err = sm.Sample(43)
		if err != nil {
			t.Fatal(err)
		}
		if ms.ScxState != "disabled" || ms.ScxExitKind != 1026 || ms.ScxExit != "error_stall" || ms.ScxOps != "" || ms.Seq != 3 {
			t.Errorf("%d-level after exit: %+v", levels, ms)
		}
	}
}

func TestLocateRejects(t *testing.T) {
	s := newSynthetic(t, 4)
	// A banner copy elsewhere (the printk buffer holds one too) with
	// garbage around it must not be taken for the kernel.
	copy(s.ram[0x800000:], s.k.Banner)
	if _, err := LocateAnywhere(s.memory(), s.k); err != nil {
		t.Fatalf("real image not found beside a stray banner: %v", err)
	}
	// A copy of the image elsewhere (the decompressor's output before it
	// moves the segments into place) has the same bytes, but the kernel's
	// page tables do not map it.
	img := s.pa(synBanner) &^ 0x1fffff
	copy(s.ram[img-0x2000000:img-0x2000000+0x200000], s.ram[img:img+0x200000]) // below: scanned first
	if g, err := Locate(s.memory(), s.k); err != nil || g.PhysDelta() != s.physDelta {
		t.Fatalf("located the copy: %v", err)
	}
	// Before the kernel has built its page tables nothing is accepted.
	saved := append([]byte(nil), s.ram[s.root:s.root+4096]...)
	clear(s.ram[s.root : s.root+4096])
	if _, err := Locate(s.memory(), s.k); !errors.Is(err, ErrKernelNotFound) {
		t.Fatalf("kernel without page tables: %v", err)
	}
	copy(s.ram[s.root:], saved)
	// Without the real image only the stray copy remains: rejected.
	copy(s.ram[s.pa(synBanner):], make([]byte, len(s.k.Banner)))
	_, err := LocateAnywhere(s.memory(), s.k)
	if !errors.Is(err, ErrKernelNotFound) {
		t.Fatalf("stray banner accepted: %v", err)
	}
	// Nothing at all.
	empty, _ := guestmem.New(make([]byte, 4<<20), nil)
	if _, err := Locate(empty, s.k); !errors.Is(err, ErrKernelNotFound) {
		t.Fatalf("empty RAM: %v", err)
	}
}

// FuzzSample plants a valid kernel and lets the fuzzer overwrite guest
// state: sampling must never panic or read outside RAM.
func FuzzSample(f *testing.F) {
	f.Add(uint64(0), []byte{1, 2, 3}, uint64(0x100000))
	f.Add(uint64(0xffffc90000000000), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint64(0x2000000-0x1000000+0x1100))
	s := newSynthetic(f, 4)
	base := append([]byte(nil), s.ram...)
	f.Fuzz(func(t *testing.T, pcpu uint64, blob []byte, at uint64) {
		copy(s.ram, base)
		s.put64(s.pa(synPCPU)+8, pcpu)
		if at < uint64(len(s.ram)) {
			copy(s.ram[at:], blob)
		}
		m := s.memory()
		g, err := Locate(m, s.k)
		if err != nil {
			return
		}
		sm := NewSampler(g, 0)
		sm.Sample(1)
	})
}

// A kernel placed off its alignment is found only by the full scan.
func TestLocateUnaligned(t *testing.T) {
	s := newSynthetic(t, 4)
	m := s.memory()
	if _, err := Locate(m, s.k); err != nil {
		t.Fatal(err)
	}
	// Pretend the kernel links the banner 4 KiB further on: the aligned
	// candidates now miss it, the full scan finds it (and then rejects it,
	// since the page tables say otherwise).
	k := *s.k
	k.Symbols = kernelsym.Symbols{}
	for n, a := range s.k.Symbols {
		k.Symbols[n] = a
	}
	k.Symbols["linux_banner"] += 0x1000
	if _, err := Locate(m, &k); !errors.Is(err, ErrKernelNotFound) || strings.Contains(err.Error(), "banner found") {
		t.Fatalf("aligned search: %v", err)
	}
	if _, err := LocateAnywhere(m, &k); err == nil || !strings.Contains(err.Error(), "banner found") {
		t.Fatalf("full scan: %v", err)
	}
}

// TestWatchdogOverride: the sampler writes the override into
// scx_watchdog_timeout while a scheduler is enabled, keeps the kernel's
// check-in timestamp fresh until the kernel's watchdog work has run once
// on its own, then leaves it alone; a new scheduler starts over.
func TestWatchdogOverride(t *testing.T) {
	s := newSynthetic(t, 4)
	s.setTask(s.pa(synInitTask), 0, "swapper/0")
	s.setRq(0, 0, 1, s.va(synInitTask), 0, 0)
	s.setRq(1, 0, 1, s.va(synInitTask), 0, 0)
	s.put32(s.pa(synState), 1) // enabled
	s.put64(s.pa(synWatchdog), 5000)
	s.put64(s.pa(synWDStamp), 90_000) // set at enable
	s.put64(s.pa(synJiffies), 90_100)
	g, err := Locate(s.memory(), s.k)
	if err != nil {
		t.Fatal(err)
	}
	sm := NewSampler(g, 0)
	var logs []string
	sm.WatchdogOverride, sm.Logf = 2*time.Second, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	get := func(link uint64) uint64 { return binary.LittleEndian.Uint64(s.ram[s.pa(link):]) }
	ms, err := sm.Sample(1)
	if err != nil {
		t.Fatal(err)
	}
	if get(synWatchdog) != 2000 || ms.WatchdogTimeout != 2e9 || get(synWDStamp) != 90_100 {
		t.Fatalf("after the first sample: timeout %d (sample says %d ns), timestamp %d", get(synWatchdog), ms.WatchdogTimeout, get(synWDStamp))
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "set to 2s") || !strings.Contains(logs[0], "was 5.000s") {
		t.Fatalf("logs %q", logs)
	}
	// Before the kernel's work runs: the timestamp follows jiffies.
	s.put64(s.pa(synJiffies), 90_200)
	sm.Sample(2)
	if get(synWDStamp) != 90_200 {
		t.Fatalf("timestamp %d, want it refreshed to 90200", get(synWDStamp))
	}
	// The kernel's watchdog work runs and writes its own timestamp: from
	// now on the sampler leaves it alone.
	s.put64(s.pa(synWDStamp), 90_250)
	s.put64(s.pa(synJiffies), 90_300)
	sm.Sample(3)
	s.put64(s.pa(synJiffies), 90_900)
	sm.Sample(4)
	if get(synWDStamp) != 90_250 {
		t.Fatalf("timestamp %d, want the kernel's 90250 kept", get(synWDStamp))
	}
	// The scheduler goes; a new one sets its own timeout and is overridden
	// again.
	s.put32(s.pa(synState), 3)
	sm.Sample(5)
	s.put32(s.pa(synState), 1)
	s.put64(s.pa(synWatchdog), 30000)
	s.put64(s.pa(synWDStamp), 95_000)
	s.put64(s.pa(synJiffies), 95_010)
	sm.Sample(6)
	if get(synWatchdog) != 2000 || get(synWDStamp) != 95_010 || len(logs) != 2 {
		t.Fatalf("new scheduler: timeout %d, timestamp %d, logs %q", get(synWatchdog), get(synWDStamp), logs)
	}
	// Off by default: nothing is written.
	sm2 := NewSampler(g, 0)
	s.put64(s.pa(synWatchdog), 30000)
	sm2.Sample(7)
	if get(synWatchdog) != 30000 {
		t.Fatal("a sampler without the override wrote the timeout")
	}
}
