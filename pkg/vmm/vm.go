package vmm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/acpi"
	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/perfmode"
	"github.com/ktstr-go/ktstr/pkg/runwatch"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Exit reasons, as VMExit.Reason spells them.
const (
	ReasonGuestExit   = "guest_exit"
	ReasonPoweroff    = "poweroff"
	ReasonReboot      = "reboot"
	ReasonTripleFault = "triple_fault"
	ReasonPanic       = "panic"
	ReasonTimeout     = "timeout"
	ReasonSignal      = "signal"
	ReasonStopped     = "stopped"
	ReasonError       = "error"
)

// Exit codes of ktstr-boot other than the guest's own (man/ktstr-boot.1).
const (
	ExitUsage       = 2
	ExitPanic       = 121
	ExitShutdown    = 122 // poweroff or reboot without a guest-exit frame
	ExitTripleFault = 123
	ExitTimeout     = 124
	ExitVMMError    = 125
	ExitSignalBase  = 128
)

// GuestExitGrace is how long the guest may take to shut down after its
// guest-exit frame before ktstr-boot stops it.
const GuestExitGrace = 10 * time.Second

// Config describes one run.
type Config struct {
	Kernel     []byte // bzImage bytes (when KernelFile is nil)
	KernelPath string // for the VMStart frame
	// KernelFile and Initramfs, when set, are read straight from their
	// files into guest RAM (OpenKernel, OpenInitramfs): ktstr-boot's
	// path. Kernel and Initrd are the in-memory alternative.
	KernelFile  *Kernel
	Initramfs   *Initramfs
	Initrd      []byte
	Cmdline     string // complete kernel command line
	VCPUs       int    // shorthand for Topology nil: VCPUs cores in one LLC
	Memory      uint64
	Timeout     time.Duration // 0: none
	Stream      io.Writer     // stdout
	Console     io.Writer     // COM1 and hvc0
	COM2        io.Writer     // nil: Console
	CPUs        []int         // host CPUs (KTSTR_CPUS); vCPU i is pinned to CPUs[i mod len] (nil: any)
	ControlFIFO string        // path of the control FIFO to create ("" none)
	Signals     <-chan os.Signal
	// Topology is the guest's CPU and NUMA shape (nil: VCPUs cores in
	// one LLC of one node); see topology.go.
	Topology *topology.Topology
	// Perf, when set, runs in performance mode (perf.go).
	Perf *perfmode.Plan
	// Log receives one-line notes about the set-up (nil: none), and the
	// hang warnings below.
	Log io.Writer
	// HangWarn, when > 0, prints a warning on Log each time no guest
	// frame arrived for that long, with the last console line
	// (hangwatch.go; ktstr-boot --hang-warn).
	HangWarn time.Duration
	// ReportNoExit reports on Log a run that ended without a guest_exit
	// frame, with the console's tail (false for --shell and --exec).
	ReportNoExit bool
	// HVC, when set, receives hvc0's output instead of Console (--shell,
	// --exec); ConsoleInput is typed into hvc0; closing Stop ends the run
	// with reason "stopped" (Ctrl-A X). See console_input.go.
	HVC          io.Writer
	ConsoleInput io.Reader
	Stop         <-chan struct{}
	// Start is when the process started, for the first-frame time
	// (zero: when Run was called).
	Start time.Time
	// Setup times the set-up phases for the VMStart frame; nil: a clock
	// started at Start. ktstr-boot's main starts it and marks its own
	// phases (args, open_inputs, config) before Run.
	Setup *SetupClock
	// GuestCode, for tests: raw guest code instead of a bzImage. It is
	// loaded at GuestCodeAddr and entered in 64-bit mode with the same
	// page tables and GDT Linux gets.
	GuestCode []byte
}

// GuestCodeAddr is where Config.GuestCode is loaded and entered.
const GuestCodeAddr = kernelAddr

// Result is how a run ended.
type Result struct {
	Reason      string
	Detail      string
	EndedBy     string // with Reason guest_exit: how the machine stopped
	ExitCode    int
	GuestCode   *int32
	Wall        time.Duration
	VCPUs       int
	GuestBytes  uint64
	GuestFrames uint64
	// FirstFrame is the time from Config.Start to the guest's first
	// stream byte (0: none arrived).
	FirstFrame time.Duration
	// Setup is the time from Config.Start to the vCPUs' release into
	// their first KVM_RUN (the vm_start frame's setup_ns).
	Setup time.Duration
	Stats map[string]uint64
}

type endEvent struct {
	reason, detail string
}

type machine struct {
	cfg   Config
	sys   *kvm.System
	vm    *kvm.VM
	mem   *guestmem.Memory
	topo  *topology.Topology // the guest's shape: the one vCPU count
	vcpus []*kvm.VCPU
	tids  []atomic.Int32
	// regsReq[i] asks vCPU i's thread to print its registers (control
	// FIFO "regs") the next time KVM_RUN returns.
	regsReq []atomic.Bool
	stuck   atomic.Bool // a vCPU thread did not stop: leak its fds and RAM
	boot    BootInfo    // what createVCPUs needs of it: the entry point
	kern    *Kernel     // nil: Config.GuestCode
	// The loader (startLoad): closed when it is done, its error and its
	// phases, read only after loaded is closed.
	loaded    chan struct{}
	loadErr   error
	loadClock *SetupClock
	pio       Bus   // port I/O devices (buildDevices)
	mmio      Bus   // MMIO devices
	com1      *uart // also typed into by the control FIFO (SysRq)
	com2      *uart
	console   *virtioConsole
	stream    *Stream
	watch     *ConsoleWatch
	tail      *runwatch.ConsoleTail // the console's last bytes (hangwatch.go)
	closers   []func()

	panicked atomic.Bool
	signal   atomic.Int32

	endOnce sync.Once
	ended   chan struct{}
	end     endEvent
	stopped atomic.Bool
}

// DefaultCmdline is the kernel command line ktstr-boot starts from; the
// user's extra arguments are appended after it.
func DefaultCmdline() string {
	return "console=ttyS0 reboot=k panic=-1 pci=off nomodules quiet " +
		"i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd i8042.nokbd " +
		"no_timer_check clocksource=kvm-clock random.trust_cpu=on " +
		fmt.Sprintf("virtio_mmio.device=4K@%#x:%d", VirtioMMIOBase, VirtioIRQ)
}

// Run boots the machine described by cfg and runs it to the end. The
// error is non-nil only when the machine could not be built (exit code
// ExitVMMError); how a started guest ended is in Result.
func Run(cfg Config) (Result, error) {
	start := time.Now()
	if cfg.Start.IsZero() {
		cfg.Start = start
	}
	if cfg.Setup == nil {
		cfg.Setup = NewSetupClock(cfg.Start)
	}
	m := &machine{cfg: cfg, ended: make(chan struct{})}
	defer m.close()
	if cfg.COM2 == nil {
		m.cfg.COM2 = cfg.Console
	}
	if err := m.build(); err != nil {
		return Result{Reason: ReasonError, Detail: err.Error(), ExitCode: ExitVMMError}, err
	}
	fifo := ""
	if cfg.ControlFIFO != "" {
		if err := m.startControl(cfg.ControlFIFO); err != nil {
			return Result{Reason: ReasonError, Detail: err.Error(), ExitCode: ExitVMMError}, err
		}
		fifo = cfg.ControlFIFO
	}
	vs := wire.VMStart{
		VMM: "ktstr-boot", PID: os.Getpid(), VCPUs: len(m.topo.CPUs),
		MemorySize: m.mem.Size(), ControlFIFO: fifo, Kernel: cfg.KernelPath, Cmdline: cfg.Cmdline,
	}
	if m.mem.FD() >= 0 {
		vs.MemoryPath = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), m.mem.FD())
	}
	for _, r := range m.mem.Regions() {
		vs.Regions = append(vs.Regions, wire.MemRegion{GPA: r.GPA, Size: r.Size, Offset: r.Offset})
	}
	// The set-up ends here: what follows is writing this frame and
	// starting the vCPU threads, which enter KVM_RUN at once.
	cfg.Setup.Mark(PhaseStart)
	vs.SetupNS, vs.SetupPhases = uint64(cfg.Setup.Total()), cfg.Setup.Phases()
	if err := m.stream.WriteHost(vs); err != nil {
		err = fmt.Errorf("write the VM-start frame to stdout: %w", err)
		return Result{Reason: ReasonError, Detail: err.Error(), ExitCode: ExitVMMError}, err
	}

	m.console.Start()
	if cfg.ConsoleInput != nil {
		go m.pumpInput(cfg.ConsoleInput)
	}
	var wg sync.WaitGroup
	for i := range m.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.runVCPU(i)
		}()
	}
	hang := m.startHangWatch()
	m.wait()
	hang.Stop()
	m.stopped.Store(true)
	m.kickAll()
	joined := make(chan struct{})
	go func() { wg.Wait(); close(joined) }()
	t := time.NewTicker(10 * time.Millisecond)
waitJoin:
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case <-joined:
			break waitJoin
		case <-t.C:
			m.kickAll()
		}
	}
	t.Stop()
	select {
	case <-joined:
	default:
		m.stuck.Store(true)
		m.end.detail = strings.TrimPrefix(m.end.detail+"; a vCPU thread did not stop within 5 s", "; ")
	}
	m.console.Stop()
	if !m.stuck.Load() {
		m.console.Drain()
	}
	m.watch.Flush()

	m.stream.CloseGuest()
	res := m.result(time.Since(cfg.Start))
	res.Setup = time.Duration(vs.SetupNS)
	if fb := m.stream.FirstByte(); !fb.IsZero() {
		res.FirstFrame = fb.Sub(cfg.Start)
	}
	ve := wire.VMExit{Reason: res.Reason, ExitCode: res.ExitCode, WallNS: uint64(res.Wall), VCPUs: res.VCPUs,
		Detail: res.Detail, EndedBy: res.EndedBy, KVMStats: res.Stats, FirstGuestFrameNS: uint64(res.FirstFrame),
		GuestHostFrames: m.stream.Refused()}
	if err := m.stream.WriteHost(ve); err != nil && res.Reason != ReasonError {
		res.Detail = strings.TrimPrefix(res.Detail+"; ", "; ") + "stdout: " + err.Error()
	}
	m.reportNoExit(res)
	return res, nil
}

func (m *machine) close() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
}

// build makes the machine, in named steps; each ends a set-up phase
// (setup.go) on the clock. Loading the guest (startLoad, waitLoad) runs on
// its own goroutine beside createVM, buildDevices and createVCPUs, which
// need no guest RAM contents; its phases are reported as concurrent. Run
// calls build once.
func (m *machine) build() error {
	clock := m.cfg.Setup
	for _, step := range []struct {
		phase string // "": the step marks its own phases
		do    func() error
	}{
		{PhaseOpenKVM, m.openKVM},
		{PhaseMapMemory, m.mapMemory},
		{"", m.startLoad}, // the guest's RAM fills while KVM makes the VM
		{PhaseCreateVM, m.createVM},
		{PhaseDevices, m.buildDevices},
		{PhaseVCPUs, m.createVCPUs},
		{PhaseLoadWait, m.waitLoad},
	} {
		if err := step.do(); err != nil {
			return err
		}
		if step.phase != "" {
			clock.Mark(step.phase)
		}
	}
	return nil
}

// openKVM resolves the guest's shape (machine.topo, from here on the only
// vCPU count) and its kernel, opens /dev/kvm and checks that this KVM can
// make it.
func (m *machine) openKVM() error {
	cfg := m.cfg
	if cfg.VCPUs < 1 && cfg.Topology == nil {
		return fmt.Errorf("need at least one vCPU, got %d", cfg.VCPUs)
	}
	topo, err := topologyOf(cfg)
	if err != nil {
		return err
	}
	m.topo = topo
	m.kern = cfg.KernelFile
	if cfg.GuestCode == nil && m.kern == nil {
		if m.kern, err = parseBzImage(cfg.Kernel); err != nil {
			return err
		}
	}
	sys, err := kvm.Open()
	if err != nil {
		return err
	}
	m.sys = sys
	m.closers = append(m.closers, func() { sys.Close() })
	for _, c := range []struct {
		cap  int
		name string
	}{{kvm.CapIRQChip, "KVM_CAP_IRQCHIP"}, {kvm.CapUserMemory, "KVM_CAP_USER_MEMORY"}, {kvm.CapSetTSSAddr, "KVM_CAP_SET_TSS_ADDR"}, {kvm.CapPIT2, "KVM_CAP_PIT2"}, {kvm.CapExtCPUID, "KVM_CAP_EXT_CPUID"}} {
		if sys.CheckExtension(c.cap) == 0 {
			return fmt.Errorf("/dev/kvm lacks %s", c.name)
		}
	}
	return checkVCPULimits(sys, topo)
}

// createVM makes the VM with its in-kernel irqchip and PIT, sets the
// exits perf mode turns off (or halt polling, when oversubscribed), and
// gives KVM one memory slot per guest RAM region.
func (m *machine) createVM() error {
	sys := m.sys
	vm, err := sys.CreateVM()
	if err != nil {
		return err
	}
	m.vm = vm
	m.closers = append(m.closers, func() { vm.Close() })
	if m.cfg.Perf != nil {
		note, err := disableExits(vm, sys)
		if err != nil {
			return err
		}
		m.logf("perf mode: %s", note)
	} else if noHaltPollWhenOversubscribed(vm, sys, len(m.topo.CPUs)) {
		m.logf("%d vCPUs on fewer host CPUs: KVM halt polling off", len(m.topo.CPUs))
	}
	if err := vm.SetTSSAddr(tssAddr); err != nil {
		return err
	}
	if sys.CheckExtension(kvm.CapSetIdentityMap) != 0 {
		if err := vm.SetIdentityMapAddr(identityMap); err != nil {
			return err
		}
	}
	if err := vm.CreateIRQChip(); err != nil {
		return err
	}
	if err := vm.CreatePIT2(); err != nil {
		return err
	}
	for i, r := range m.mem.Regions() {
		host := m.mem.Host(r)
		err := vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{
			Slot: uint32(i), GuestPhysAddr: r.GPA, MemorySize: r.Size,
			UserspaceAddr: uint64(uintptrOf(host)),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// mapMemory creates guest RAM (on huge pages in perf mode).
func (m *machine) mapMemory() error {
	newMem := newMemory
	if m.cfg.Perf != nil {
		newMem = newHugeMemory
	}
	mem, err := newMem(m.cfg.Memory)
	if err != nil {
		return err
	}
	m.mem = mem
	m.closers = append(m.closers, func() {
		if !m.stuck.Load() {
			mem.Close()
		}
	})
	return nil
}

// startLoad starts loading the guest on its own goroutine (loadGuest);
// waitLoad collects it. The entry point, all createVCPUs needs of the
// boot information, is fixed and set here.
func (m *machine) startLoad() error {
	if m.kern != nil {
		m.boot.Entry = kernelAddr + entry64Offset
	} else {
		m.boot.Entry = GuestCodeAddr
	}
	done := make(chan struct{})
	m.loaded = done
	m.loadClock = NewSetupClock(time.Now())
	go func() {
		defer close(done)
		m.loadErr = m.loadGuest(m.loadClock)
	}()
	// However build ends, guest RAM stays mapped until the loader is done
	// with it (closers run last to first; mem.Close was added before).
	m.closers = append(m.closers, func() { <-done })
	return nil
}

// waitLoad waits for loadGuest and adds its phases to the clock, as
// concurrent ones.
func (m *machine) waitLoad() error {
	<-m.loaded
	if m.loadErr != nil {
		return m.loadErr
	}
	m.cfg.Setup.AddConcurrent(m.loadClock.Phases())
	return nil
}

// loadGuest puts the kernel, initramfs, boot and ACPI tables (loadBoot)
// or the test's guest code in guest RAM, marking load_kernel,
// load_initramfs and boot_tables on clock. It runs on startLoad's goroutine and touches
// nothing but guest RAM and its own results.
func (m *machine) loadGuest(clock *SetupClock) error {
	cfg := m.cfg
	if m.kern != nil {
		boot, err := loadBoot(m.mem, BootConfig{Kernel: m.kern, Initramfs: cfg.Initramfs, Initrd: cfg.Initrd, Cmdline: cfg.Cmdline, Topology: m.topo}, clock)
		if err != nil {
			return err
		}
		if boot.Entry != kernelAddr+entry64Offset {
			return fmt.Errorf("internal error: kernel entry %#x, vCPUs were set up for %#x", boot.Entry, kernelAddr+entry64Offset)
		}
		return nil
	}
	if err := m.mem.Write(GuestCodeAddr, cfg.GuestCode); err != nil {
		return fmt.Errorf("load guest code: %w", err)
	}
	if err := writePageTables(m.mem); err != nil {
		return err
	}
	if err := writeGDT(m.mem); err != nil {
		return err
	}
	clock.Mark(PhaseBootTables)
	return nil
}

// buildDevices makes the devices and puts them on the buses: COM1 and
// COM2, the i8042 (its reset line ends the run), the RTC, the reset
// control port, the ACPI PM1a block and the virtio-mmio console.
func (m *machine) buildDevices() error {
	cfg := m.cfg
	m.watch = NewConsoleWatch(m.consoleSink(cfg.Console), m.onConsoleEvent)
	com2 := cfg.COM2
	if com2 == nil {
		com2 = m.watch
	}
	kbd := newI8042(func() { m.finish(ReasonReboot, "guest reset through the i8042 controller") })
	rtc := newCMOS()
	m.com1 = newUART(m.watch, m.irq(COM1IRQ))
	m.com2 = newUART(com2, m.irq(COM2IRQ))
	m.stream = NewStream(cfg.Stream)
	var hvc io.Writer = m.watch
	if cfg.HVC != nil {
		hvc = cfg.HVC
	}
	m.console = newVirtioConsole(m.mem, hvc, m.stream, m.irq(VirtioIRQ))
	m.closers = append(m.closers, m.console.Stop)
	m.notifyEventFD()
	for _, d := range []struct {
		bus        *Bus
		name       string
		dev        Device
		base, size uint64
	}{
		{&m.pio, "COM1", serialDevice(m.com1), COM1Base, 8},
		{&m.pio, "COM2", serialDevice(m.com2), COM2Base, 8},
		{&m.pio, "i8042 data", kbd.port(i8042Data), i8042Data, 1},
		{&m.pio, "i8042 command", kbd.port(i8042Command), i8042Command, 1},
		{&m.pio, "RTC", rtc.device(), cmosIndex, 2},
		{&m.pio, "reset control", m.resetControl(), resetControl, 1},
		{&m.pio, "ACPI PM1a", &acpiPM{powerOff: m.acpiPowerOff}, acpi.PM1aEvtPort, acpi.PMPortsEnd - acpi.PM1aEvtPort},
		{&m.mmio, "virtio-mmio console", m.console.Transport(), VirtioMMIOBase, VirtioMMIOSize},
	} {
		if err := d.bus.Insert(d.name, d.dev, d.base, d.size); err != nil {
			return err
		}
	}
	return nil
}

// createVCPUs makes one vCPU per topology CPU (its KVM id is its APIC
// ID), with the guest's CPUID (features set once, topology leaves per
// vCPU) and the boot registers.
func (m *machine) createVCPUs() error {
	supported, err := m.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	topo := m.topo
	base := topologyCPUID(guestFeatures(supported, m.cfg.Perf != nil))
	m.tids = make([]atomic.Int32, len(topo.CPUs))
	m.regsReq = make([]atomic.Bool, len(topo.CPUs))
	for i := range topo.CPUs {
		c, err := m.vm.CreateVCPU(int(topo.CPUs[i].APICID))
		if err != nil {
			return err
		}
		m.vcpus = append(m.vcpus, c)
		m.closers = append(m.closers, func() {
			if !m.stuck.Load() {
				c.Close()
			}
		})
		cpuid, err := vcpuCPUID(base, topo, i)
		if err != nil {
			return err
		}
		// The TSC-deadline timer is deliberately not advertised (KVM leaves
		// it to userspace): in the nested lab an L2 with it stops getting
		// timer interrupts early in boot, reproducibly, while the LAPIC
		// timer (with the PIT as fallback) boots every time.
		if err := setupVCPU(c, cpuid, m.boot); err != nil {
			return err
		}
	}
	return nil
}

func uintptrOf(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// irq returns a function that pulses interrupt line gsi through an irqfd,
// or through KVM_IRQ_LINE where irqfd is unavailable.
func (m *machine) irq(gsi uint32) func() {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		if err = m.vm.IRQFD(efd, gsi); err == nil {
			m.closers = append(m.closers, func() { unix.Close(efd) })
			one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			return func() { unix.Write(efd, one) }
		}
		unix.Close(efd)
	}
	return func() {
		m.vm.IRQLine(gsi, true)
		m.vm.IRQLine(gsi, false)
	}
}

// notifyEventFD lets the guest's kicks of the stream queue wake the
// stream worker in the kernel, without an exit to ktstr-boot.
func (m *machine) notifyEventFD() {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return
	}
	match := uint64(qTx1)
	if err := m.vm.IOEventFD(efd, VirtioMMIOBase+mmioQueueNotify, 4, false, &match); err != nil {
		unix.Close(efd)
		return
	}
	f := os.NewFile(uintptr(efd), "ktstr-stream-notify")
	m.closers = append(m.closers, func() { f.Close() })
	go func() {
		var b [8]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				return
			}
			m.console.Kick()
		}
	}()
}

func (m *machine) finish(reason, detail string) {
	m.endOnce.Do(func() {
		m.end = endEvent{reason, detail}
		close(m.ended)
	})
}

// kick makes vCPU i's KVM_RUN return (at once if it is running, else on
// its next entry).
func (m *machine) kick(i int) {
	m.vcpus[i].SetImmediateExit(true)
	if tid := m.tids[i].Load(); tid != 0 {
		unix.Tgkill(os.Getpid(), int(tid), unix.SIGURG)
	}
}

// requestRegs has every vCPU print its registers on the log (control FIFO
// "regs"): where a hung guest's CPUs are, without the guest's help.
func (m *machine) requestRegs() {
	for i := range m.vcpus {
		m.regsReq[i].Store(true)
		m.kick(i)
	}
}

// printRegs prints vCPU i's registers; it runs on the vCPU's own thread,
// between two KVM_RUNs.
func (m *machine) printRegs(i int) {
	c := m.vcpus[i]
	r, err := c.Regs()
	if err != nil {
		fmt.Fprintf(m.watch, "ktstr-boot: regs: vCPU %d: %v\n", i, err)
		return
	}
	s, err := c.Sregs()
	if err != nil {
		fmt.Fprintf(m.watch, "ktstr-boot: regs: vCPU %d: %v\n", i, err)
		return
	}
	fmt.Fprintf(m.watch, "ktstr-boot: regs: vCPU %d: rip=%#016x rsp=%#016x rflags=%#x (IF=%d) cpl=%d cr3=%#x rax=%#x rdi=%#x\n",
		i, r.RIP, r.RSP, r.RFLAGS, r.RFLAGS>>9&1, s.CS.Selector&3, s.CR3, r.RAX, r.RDI)
}

func (m *machine) kickAll() {
	pid := os.Getpid()
	for i, c := range m.vcpus {
		c.SetImmediateExit(true)
		if tid := m.tids[i].Load(); tid != 0 {
			unix.Tgkill(pid, int(tid), unix.SIGURG)
		}
	}
}

func (m *machine) wait() {
	var timeout <-chan time.Time
	if m.cfg.Timeout > 0 {
		t := time.NewTimer(m.cfg.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	var exitSeen time.Time
	for {
		select {
		case <-m.ended:
			return
		case <-m.cfg.Stop:
			m.finish(ReasonStopped, "stopped from the terminal")
		case <-timeout:
			m.finish(ReasonTimeout, fmt.Sprintf("guest still running after %s", m.cfg.Timeout))
		case s := <-m.cfg.Signals:
			sig, _ := s.(unix.Signal)
			m.signal.CompareAndSwap(0, int32(sig))
			m.finish(ReasonSignal, fmt.Sprintf("stopped by %s (%d)", s, int(sig)))
		case <-poll.C:
			if _, ok := m.stream.GuestExit(); ok {
				if exitSeen.IsZero() {
					exitSeen = time.Now()
				} else if time.Since(exitSeen) > GuestExitGrace {
					m.finish(ReasonGuestExit, fmt.Sprintf("guest did not shut down within %s of its exit frame", GuestExitGrace))
				}
			}
			if err := m.stream.Err(); err != nil {
				m.finish(ReasonError, "stdout: "+err.Error())
			}
		}
	}
}

func (m *machine) onConsoleEvent(ev string) {
	switch ev {
	case ReasonPanic:
		m.panicked.Store(true)
	case ReasonPoweroff:
		m.finish(ReasonPoweroff, "guest kernel printed \"reboot: Power down\"")
	}
}

func (m *machine) runVCPU(i int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m.tids[i].Store(int32(unix.Gettid()))
	defer m.tids[i].Store(0)
	// Name the thread as QEMU does ("CPU N/KVM"): ktstr-monitor tells a
	// preempted vCPU from a stalled guest CPU by these threads' CPU time.
	defer nameThread(fmt.Sprintf("CPU %d/KVM", i))()
	if err := m.placeVCPU(i); err != nil {
		m.finish(ReasonError, err.Error())
		return
	}
	c := m.vcpus[i]
	for !m.stopped.Load() {
		err := c.Run()
		if m.regsReq[i].Swap(false) && !m.stopped.Load() {
			c.SetImmediateExit(false)
			m.printRegs(i)
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			m.finish(ReasonError, fmt.Sprintf("KVM_RUN on vCPU %d: %v", i, err))
			return
		}
		switch r := c.ExitReason(); r {
		case kvm.ExitIO:
			io, ok := c.IOExit()
			if !ok {
				m.finish(ReasonError, fmt.Sprintf("vCPU %d: malformed I/O exit", i))
				return
			}
			m.runPIO(io)
		case kvm.ExitMMIO:
			m.runMMIO(c.MMIOExit())
		case kvm.ExitHLT, kvm.ExitIntr, kvm.ExitIRQWindowOpen:
		case kvm.ExitShutdown:
			m.finish(ReasonTripleFault, fmt.Sprintf("vCPU %d: triple fault (KVM_EXIT_SHUTDOWN)", i))
			return
		case kvm.ExitSystemEvent:
			switch t := c.SystemEventType(); t {
			case kvm.SystemEventShutdown:
				m.finish(ReasonPoweroff, "guest requested shutdown")
			case kvm.SystemEventReset:
				m.finish(ReasonReboot, "guest requested reset")
			case kvm.SystemEventCrash:
				m.finish(ReasonPanic, "guest reported a crash")
			default:
				m.finish(ReasonError, fmt.Sprintf("vCPU %d: system event %d", i, t))
			}
			return
		case kvm.ExitFailEntry:
			m.finish(ReasonError, fmt.Sprintf("vCPU %d: VM entry failed, hardware reason %#x", i, c.FailEntryReason()))
			return
		case kvm.ExitInternalError:
			sub, data := c.InternalError()
			m.finish(ReasonError, fmt.Sprintf("vCPU %d: KVM internal error %d %#x", i, sub, data))
			return
		default:
			m.finish(ReasonError, fmt.Sprintf("vCPU %d: unhandled exit reason %d", i, r))
			return
		}
	}
}

// runPIO runs a port I/O exit (one access, or Count of them for a string
// instruction) on the port bus.
func (m *machine) runPIO(x kvm.IO) {
	if x.Size != 1 && x.Size != 2 && x.Size != 4 {
		return
	}
	for n := 0; n < x.Count; n++ {
		d := x.Data[n*x.Size : (n+1)*x.Size]
		if x.Out {
			m.pio.Write(uint64(x.Port), d)
		} else {
			m.pio.Read(uint64(x.Port), d)
		}
	}
}

// runMMIO runs an MMIO exit on the MMIO bus.
func (m *machine) runMMIO(x kvm.MMIO) {
	if x.Write {
		m.mmio.Write(x.Addr, x.Data)
	} else {
		m.mmio.Read(x.Addr, x.Data)
	}
}

// statNames are the per-vCPU KVM statistics summed into VMExit.KVMStats.
var statNames = []string{"exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits",
	"signal_exits", "hypercalls", "halt_successful_poll", "halt_attempted_poll",
	"halt_wait_ns", "preemption_reported", "insn_emulation", "irq_injections", "nmi_injections"}

func (m *machine) kvmStats() map[string]uint64 {
	out := map[string]uint64{}
	want := map[string]bool{}
	for _, n := range statNames {
		want[n] = true
	}
	for _, c := range m.vcpus {
		f, err := c.StatsFD()
		if err != nil {
			return nil
		}
		st, err := kvm.ReadStats(f)
		f.Close()
		if err != nil {
			return nil
		}
		for k, v := range st {
			if want[k] {
				out[k] += v
			}
		}
	}
	return out
}

func (m *machine) result(wall time.Duration) Result {
	res := Result{Reason: m.end.reason, Detail: m.end.detail, Wall: wall, VCPUs: len(m.vcpus), Stats: m.kvmStats()}
	res.GuestBytes, res.GuestFrames = m.stream.Counts()
	if b := m.console.Transport().Broken(); b != "" {
		res.Detail = strings.TrimPrefix(res.Detail+"; virtio console: "+b, "; ")
	}
	code, haveCode := m.stream.GuestExit()
	if haveCode {
		c := code
		res.GuestCode = &c
	}
	var sig int
	if res.Reason == ReasonSignal {
		sig = int(m.signal.Load())
	}
	res.Reason, res.ExitCode = Classify(res.Reason, m.panicked.Load(), res.GuestCode, sig)
	if res.Reason == ReasonGuestExit {
		res.EndedBy = m.end.reason
		if m.end.reason != ReasonGuestExit {
			res.Detail = strings.TrimPrefix(res.Detail+"; ended by "+m.end.reason, "; ")
		}
	}
	return res
}

// Classify turns how a run ended into the reason and exit code ktstr-boot
// reports (man/ktstr-boot.1, EXIT STATUS), whichever VMM ran the guest:
// reason is how the run stopped (Reason*), panicked whether the console
// showed a kernel panic, guestCode the guest_exit frame's code if one
// arrived, signal the signal number for ReasonSignal.
func Classify(reason string, panicked bool, guestCode *int32, signal int) (string, int) {
	switch {
	case reason == ReasonError:
		return reason, ExitVMMError
	case reason == ReasonSignal:
		if signal <= 0 || signal > 64 {
			signal = int(unix.SIGTERM)
		}
		return reason, ExitSignalBase + signal
	case panicked || reason == ReasonPanic:
		return ReasonPanic, ExitPanic
	case guestCode != nil && reason != ReasonTimeout:
		return ReasonGuestExit, int(uint32(*guestCode) & 0xFF)
	case reason == ReasonTimeout:
		return reason, ExitTimeout
	case reason == ReasonTripleFault:
		return reason, ExitTripleFault
	case reason == ReasonStopped:
		return reason, ExitSignalBase + int(unix.SIGTERM)
	default: // poweroff, reboot
		return reason, ExitShutdown
	}
}

// DefaultTimeout is --timeout's default.
const DefaultTimeout = 60 * time.Second

// Summary is a one-line description of how the run ended.
func (r Result) Summary() string {
	s := fmt.Sprintf("guest ended: %s (exit %d)", r.Reason, r.ExitCode)
	if r.GuestCode != nil {
		s = fmt.Sprintf("guest exited with code %d", *r.GuestCode)
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s
}

func (m *machine) logf(format string, a ...any) {
	if m.cfg.Log != nil {
		fmt.Fprintf(m.cfg.Log, "ktstr-boot: "+format+"\n", a...)
	}
}

// nameThread sets the calling OS thread's name (15 bytes at most) and
// returns a function that restores the previous one.
func nameThread(name string) (restore func()) {
	var old [16]byte
	if err := unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0); err != nil {
		return func() {}
	}
	b := append([]byte(name), 0)
	if len(b) > 16 {
		b = append(b[:15], 0)
	}
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0); err != nil {
		return func() {}
	}
	return func() { unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0) }
}
