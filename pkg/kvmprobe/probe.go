package kvmprobe

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/kvm"
	"golang.org/x/sys/unix"
)

// Kind is the probe's verdict on a /dev/kvm.
type Kind string

const (
	// None: no usable /dev/kvm (absent, no permission, not KVM).
	None Kind = "none"
	// Emulated: /dev/kvm answers but runs guest code in software, orders
	// of magnitude slower than the host CPU; Linux does not boot on it.
	Emulated Kind = "emulated"
	// Hardware: guest code runs at about the host CPU's speed
	// (hardware-assisted KVM, bare metal or nested).
	Hardware Kind = "hardware"
)

// Threshold is the guest/host loop-speed ratio from which /dev/kvm counts
// as hardware-assisted. Measured (README, "KVM probe"): this project's
// emulated /dev/kvm 0.0003-0.001; KVM inside the nested lab's L1 (nested
// SVM, both sides under QEMU TCG) about 0.5-1; hardware KVM about 1. 0.05
// sits a factor 10 or more from each.
const Threshold = 0.05

// Options tune Probe; the zero value probes /dev/kvm with 5 rounds.
type Options struct {
	Device string // default kvm.DevicePath
	Rounds int    // host/guest alternations (default 5)
}

// Result is the verdict and its evidence.
type Result struct {
	Kind      Kind
	Device    string
	GuestRate float64 // loop iterations per second in the guest (median)
	HostRate  float64 // the same loop on the host CPU (median)
	Ratio     float64 // GuestRate / HostRate
	Threshold float64
	Rounds    int
	GuestIter uint32 // iterations per guest run
	HostIter  uint32 // iterations per host run
	CreateVM  time.Duration
	// Hypervisor is true when this machine is itself a VM (CPUID's
	// hypervisor bit, from /proc/cpuinfo).
	Hypervisor bool
	// Reason says why, in one line.
	Reason string
}

// Hardware reports whether the verdict is hardware-assisted KVM.
func (r Result) Hardware() bool { return r.Kind == Hardware }

// Evidence is the measured figures in one line (for logs and --probe).
func (r Result) Evidence() string {
	if r.Kind == None {
		return "no measurement"
	}
	return fmt.Sprintf("guest %.3g M/s, host %.3g M/s, ratio %.4f, threshold %.2f, %d rounds",
		r.GuestRate/1e6, r.HostRate/1e6, r.Ratio, r.Threshold, r.Rounds)
}

// Probe measures and decides. It takes well under a second on either kind
// of /dev/kvm (a few seconds on a heavily loaded emulated one).
func Probe(o Options) Result {
	if o.Device == "" {
		o.Device = kvm.DevicePath
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	r := Result{Kind: None, Device: o.Device, Threshold: Threshold, Rounds: o.Rounds}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		r.Hypervisor = strings.Contains(string(b), " hypervisor")
	}
	if runtime.GOARCH != "amd64" {
		r.Reason = "the probe guest is x86 code: no KVM probe on " + runtime.GOARCH
		return r
	}
	// Both loops run on this OS thread, so the scheduler treats them alike.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g, err := newGuest(o.Device)
	if err != nil {
		r.Reason = err.Error()
		return r
	}
	defer g.close()
	r.CreateVM = g.createVM

	// Size both loops to take about 10 ms each (an emulated /dev/kvm
	// runs the first 50 000 guest iterations in about 50 ms: keep those).
	r.GuestIter = 50_000
	d, err := g.run(r.GuestIter)
	if err != nil {
		r.Reason = err.Error()
		return r
	}
	if d < 5*time.Millisecond {
		r.GuestIter = scale(r.GuestIter, d, 10*time.Millisecond)
	}
	r.HostIter = 1_000_000
	r.HostIter = scale(r.HostIter, timeHost(r.HostIter), 10*time.Millisecond)

	var gr, hr []float64
	for i := 0; i < o.Rounds; i++ {
		h := timeHost(r.HostIter)
		d, err := g.run(r.GuestIter)
		if err != nil {
			r.Reason = err.Error()
			return r
		}
		hr = append(hr, float64(r.HostIter)/h.Seconds())
		gr = append(gr, float64(r.GuestIter)/d.Seconds())
	}
	r.GuestRate, r.HostRate = median(gr), median(hr)
	r.Ratio = r.GuestRate / r.HostRate
	r.Kind = Decide(r.Ratio)
	vm := ""
	if r.Hypervisor {
		vm = " (this machine is itself a VM: nested virtualization)"
	}
	if r.Kind == Hardware {
		r.Reason = fmt.Sprintf("%s runs guest code at %.2f of the host CPU's speed (>= %.2f): hardware-assisted KVM%s", o.Device, r.Ratio, Threshold, vm)
	} else {
		r.Reason = fmt.Sprintf("%s runs guest code at %.4f of the host CPU's speed (< %.2f): a software emulation that cannot boot Linux", o.Device, r.Ratio, Threshold)
	}
	return r
}

// Decide is the verdict for a guest/host speed ratio.
func Decide(ratio float64) Kind {
	if ratio >= Threshold {
		return Hardware
	}
	return Emulated
}

// scale returns n scaled from taking d to taking about want, within
// [n, 2e9].
func scale(n uint32, d, want time.Duration) uint32 {
	if d <= 0 {
		d = time.Microsecond
	}
	f := float64(n) * float64(want) / float64(d)
	return uint32(min(max(f, float64(n)), 2e9))
}

func timeHost(n uint32) time.Duration {
	t0 := time.Now()
	hostLoop(n)
	return time.Since(t0)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// guest is a one-vCPU real-mode VM holding "mov ecx, n; 1: dec ecx; jnz
// 1b; hlt" at 0x1000.
type guest struct {
	dev      string
	sys      *kvm.System
	vm       *kvm.VM
	cpu      *kvm.VCPU
	mem      []byte
	createVM time.Duration
}

const codeAddr = 0x1000

func newGuest(dev string) (*guest, error) {
	sys, err := kvm.OpenPath(dev)
	if err != nil {
		return nil, err
	}
	g := &guest{dev: dev, sys: sys}
	t0 := time.Now()
	if g.vm, err = sys.CreateVM(); err != nil {
		g.close()
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	g.createVM = time.Since(t0)
	g.vm.SetTSSAddr(0xfffbd000) // Intel real mode needs it; harmless on AMD
	if g.mem, err = unix.Mmap(-1, 0, 0x10000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		g.close()
		return nil, fmt.Errorf("mmap probe guest memory: %w", err)
	}
	if err := g.vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{
		MemorySize: uint64(len(g.mem)), UserspaceAddr: uint64(uintptrOf(g.mem)),
	}); err != nil {
		g.close()
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	if g.cpu, err = g.vm.CreateVCPU(0); err != nil {
		g.close()
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	s, err := g.cpu.Sregs()
	if err != nil {
		g.close()
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	if err := g.cpu.SetSregs(s); err != nil {
		g.close()
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	return g, nil
}

func (g *guest) close() {
	if g.cpu != nil {
		g.cpu.Close()
	}
	if g.vm != nil {
		g.vm.Close()
	}
	if g.mem != nil {
		unix.Munmap(g.mem)
	}
	g.sys.Close()
}

// run runs the loop n times and returns how long KVM_RUN took to reach hlt.
func (g *guest) run(n uint32) (time.Duration, error) {
	code := []byte{0x66, 0xB9, byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24), 0x66, 0x49, 0x75, 0xFC, 0xF4}
	copy(g.mem[codeAddr:], code)
	if err := g.cpu.SetRegs(kvm.Regs{RIP: codeAddr, RFLAGS: 2}); err != nil {
		return 0, fmt.Errorf("%s: %w", g.dev, err)
	}
	t0 := time.Now()
	for i := 0; i < 1000; i++ {
		err := g.cpu.Run()
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("%s: KVM_RUN: %w", g.dev, err)
		}
		switch r := g.cpu.ExitReason(); r {
		case kvm.ExitHLT:
			return time.Since(t0), nil
		case kvm.ExitUnknown, kvm.ExitIntr: // a signal interrupted KVM_RUN
		default:
			return 0, fmt.Errorf("%s: the probe guest exited with reason %d instead of hlt", g.dev, r)
		}
	}
	return 0, fmt.Errorf("%s: the probe guest never reached hlt", g.dev)
}
