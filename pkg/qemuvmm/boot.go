package qemuvmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/qemu"
	"github.com/ktstr-go/ktstr/pkg/runwatch"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/ktstr-go/ktstr/pkg/vmm"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// BootConfig is one ktstr-boot run with QEMU as the VMM.
type BootConfig struct {
	Kernel    string   // bzImage path
	Initramfs []string // blobs, concatenated in order
	Topology  *topology.Topology
	Memory    uint64 // bytes (whole MiB)
	// Cmdline is the kernel command line after BaseCmdline (and, under
	// TCG, TCGTimeCmdline); NoBaseCmdline leaves both out.
	Cmdline       string
	NoBaseCmdline bool
	Timeout       time.Duration // 0: none
	// KVM selects -accel kvm -cpu host; else TCG (single-threaded:
	// multi-threaded TCG races the guest's live text patching).
	KVM     bool
	Stream  io.Writer // stdout: vm_start, the guest's frames, vm_exit
	Console io.Writer // the guest console
	Log     io.Writer // ktstr-boot's own messages
	Signals <-chan os.Signal
	// CPUs pins QEMU to these host CPUs (KTSTR_CPUS from ktstr-hostlock;
	// nil: not pinned).
	CPUs []int
	// MemDir holds guest RAM's shared file (default /dev/shm when it is
	// a directory, else $TMPDIR); it is removed at exit.
	MemDir string
	QEMU   string // default qemu.Find()
	Start  time.Time
	// HangWarn and ReportNoExit are vmm.Config's: warn on Log while no
	// guest frame arrives for HangWarn (0: never), and report a run that
	// ended without a guest_exit frame with the console's tail.
	HangWarn     time.Duration
	ReportNoExit bool
}

// BootResult is how the run ended, as ktstr-boot reports it.
type BootResult struct {
	Reason      string // vmm.Reason*
	Detail      string
	ExitCode    int // ktstr-boot's exit status (vmm.Classify)
	GuestCode   *int32
	EndedBy     string // with Reason guest_exit: how the machine stopped
	Wall        time.Duration
	FirstFrame  time.Duration
	GuestBytes  uint64
	GuestFrames uint64
	VCPUs       int
	Args        []string // QEMU's command line
}

// Summary is a one-line description of how the run ended.
func (r BootResult) Summary() string {
	return vmm.Result{Reason: r.Reason, Detail: r.Detail, ExitCode: r.ExitCode, GuestCode: r.GuestCode}.Summary()
}

// poweroffGrace is how long QEMU may take to exit after the guest kernel
// printed "reboot: Power down" before it is stopped.
const poweroffGrace = 3 * time.Second

// consoleKeep bounds the console and QEMU stderr kept in memory.
const consoleKeep = 64 << 10

// Boot runs cfg under QEMU with ktstr-boot's contract: cfg.Stream gets a
// host vm_start frame (vmm "qemu", guest RAM's shared file as
// memory_path so ktstr-monitor can read it), the guest's "ktstr" port
// bytes unchanged (through vmm.Stream, the same frame tracking and rules
// as ktstr-boot's own VMM), then a host vm_exit frame; the exit code
// follows vmm.Classify. The error is non-nil only when QEMU could not be
// started (exit code vmm.ExitVMMError).
func Boot(ctx context.Context, cfg BootConfig) (BootResult, error) {
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	res := BootResult{VCPUs: len(cfg.Topology.CPUs)}
	fail := func(err error) (BootResult, error) {
		res.Reason, res.Detail, res.ExitCode = vmm.ReasonError, err.Error(), vmm.ExitVMMError
		return res, err
	}
	if cfg.Memory%(1<<20) != 0 || cfg.Memory == 0 {
		return fail(fmt.Errorf("QEMU takes guest RAM in whole MiB, not %d bytes", cfg.Memory))
	}
	q := cfg.QEMU
	if q == "" {
		var err error
		if q, err = qemu.Find(); err != nil {
			return fail(err)
		}
	}
	shape, err := qemu.ShapeOf(cfg.Topology, cfg.Memory)
	if err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp(memDir(cfg.MemDir), "ktstr-qemu-")
	if err != nil {
		return fail(fmt.Errorf("guest RAM directory: %w", err))
	}
	defer os.RemoveAll(dir)
	initrd, err := joinInitramfs(dir, cfg.Initramfs)
	if err != nil {
		return fail(err)
	}
	opts := qemu.Options{
		Kernel: cfg.Kernel, Initramfs: initrd, SMP: shape.SMP, Machine: shape.Machine,
		MemoryMiB: int(cfg.Memory >> 20), Cmdline: cfg.Cmdline, NoBaseCmdline: cfg.NoBaseCmdline,
		Timeout: cfg.Timeout, DiscardStream: true, ConsoleKeep: consoleKeep, QEMU: q, PinCPUs: cfg.CPUs,
		// vCPU threads named "CPU N/KVM" (or /TCG): ktstr-monitor reads
		// their CPU time to exempt a preempted vCPU from its stall check.
		ExtraArgs: []string{"-name", "ktstr,debug-threads=on"},
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * 365 * 24 * time.Hour
	}
	if cfg.KVM {
		opts.Accel, opts.CPUModel = "kvm", "host"
	} else {
		opts.Accel, opts.CPUModel = qemu.DefaultAccel, "max"
	}
	vs := wire.VMStart{VMM: "qemu", VCPUs: len(cfg.Topology.CPUs), Topology: cfg.Topology.Shape.String(), MemorySize: cfg.Memory, Kernel: cfg.Kernel}
	if len(shape.NodeSizes) > 0 {
		for i, sz := range shape.NodeSizes {
			n := qemu.NodeMem{Path: filepath.Join(dir, fmt.Sprintf("node%d.ram", i)), Size: sz}
			if err := sizedFile(n.Path, sz); err != nil {
				return fail(err)
			}
			opts.NodeMemFiles = append(opts.NodeMemFiles, n)
		}
		logf(cfg.Log, "guest RAM is one file per NUMA node under QEMU (%d files): the vm_start frame names none, so ktstr-monitor cannot sample guest memory", len(shape.NodeSizes))
	} else {
		opts.MemFile = filepath.Join(dir, "guest.ram")
		// Create it at its full size now (sparse: no RAM is used until the
		// guest touches it), so that ktstr-monitor, which opens it as soon
		// as vm_start names it, never finds it empty or short.
		if err := sizedFile(opts.MemFile, cfg.Memory); err != nil {
			return fail(err)
		}
		vs.MemoryPath = opts.MemFile
		for _, r := range guestmem.SplitLayout(cfg.Memory, guestmem.MicrovmLowMemMax) {
			vs.Regions = append(vs.Regions, wire.MemRegion{GPA: r.GPA, Size: r.Size, Offset: r.Offset})
		}
	}
	vs.Cmdline = cmdlineOf(qemu.Args(&opts, ""))

	stream := vmm.NewStream(cfg.Stream)
	gate := &gatedWriter{w: stream, open: make(chan struct{})}
	opts.Stream = gate

	var mu sync.Mutex
	var panicked, poweroff bool
	var poweroffAt time.Time
	tail := runwatch.NewConsoleTail(0)
	console := io.Writer(tail)
	if cfg.Console != nil {
		console = io.MultiWriter(cfg.Console, tail)
	}
	var hang *runwatch.Watch
	watch := vmm.NewConsoleWatch(console, func(ev string) {
		mu.Lock()
		defer mu.Unlock()
		switch ev {
		case vmm.ReasonPanic:
			panicked = true
		case vmm.ReasonPoweroff:
			if !poweroff {
				poweroff, poweroffAt = true, time.Now()
			}
		}
	})
	opts.Console = watch

	var stopReason, stopDetail string
	var signal int
	stop := func(p *qemu.Process, reason, detail string) {
		mu.Lock()
		if stopReason == "" {
			stopReason, stopDetail = reason, detail
		}
		mu.Unlock()
		p.Stop()
	}
	var startErr error
	opts.Started = func(p *qemu.Process) {
		vs.PID = p.PID()
		if err := stream.WriteHost(vs); err != nil {
			startErr = fmt.Errorf("write the VM-start frame to stdout: %w", err)
			p.Stop()
		}
		close(gate.open)
		hang = runwatch.Start(runwatch.Options{Quiet: cfg.HangWarn, Log: cfg.Log, Prefix: "ktstr-boot", Console: tail,
			Frames: func() uint64 { _, f := stream.Counts(); return f }})
		go supervise(p, stream, cfg.Signals, &mu, &poweroff, &poweroffAt, &signal, stop)
	}
	r, err := qemu.Run(ctx, opts)
	hang.Stop()
	watch.Flush()
	if r != nil {
		res.Args = r.Args
	}
	if startErr != nil {
		return fail(startErr)
	}
	if r == nil {
		return fail(err)
	}
	res.Wall = time.Since(cfg.Start)
	if fb := stream.FirstByte(); !fb.IsZero() {
		res.FirstFrame = fb.Sub(cfg.Start)
	}
	res.GuestBytes, res.GuestFrames = stream.Counts()
	if c, ok := stream.GuestExit(); ok {
		res.GuestCode = &c
	}
	mu.Lock()
	reason, detail := stopReason, stopDetail
	sawPanic, sawPoweroff := panicked, poweroff
	sig := signal
	mu.Unlock()
	switch {
	case r.TimedOut:
		reason, detail = vmm.ReasonTimeout, fmt.Sprintf("guest still running after %s", cfg.Timeout)
	case reason != "":
	case err != nil:
		reason, detail = vmm.ReasonError, err.Error()
	case r.ExitCode != 0:
		reason, detail = vmm.ReasonError, fmt.Sprintf("QEMU exited with status %d: %s", r.ExitCode, strings.TrimSpace(qemu.Tail(r.Stderr, 300)))
	case sawPoweroff:
		reason, detail = vmm.ReasonPoweroff, "guest kernel printed \"reboot: Power down\""
	default:
		// -no-reboot: QEMU exits 0 on the guest's shutdown and reset alike.
		reason, detail = vmm.ReasonReboot, "QEMU exited: the guest shut down or reset"
	}
	// The guest can write no more: a vmm.Stream that holds back a partial
	// guest frame (robust-stream's wire.GuestRelay) flushes it now, before
	// the VM-exit frame, as ktstr-boot's own VMM does.
	if c, ok := any(stream).(interface{ CloseGuest() }); ok {
		c.CloseGuest()
	}
	if serr := stream.Err(); serr != nil && reason != vmm.ReasonError {
		detail = strings.TrimPrefix(detail+"; stdout: "+serr.Error(), "; ")
		if reason != vmm.ReasonSignal {
			reason = vmm.ReasonError
		}
	}
	res.Reason, res.ExitCode = vmm.Classify(reason, sawPanic, res.GuestCode, sig)
	res.Detail = detail
	if res.Reason == vmm.ReasonGuestExit {
		res.EndedBy = reason
	}
	if cfg.ReportNoExit && res.GuestCode == nil {
		how := fmt.Sprintf("ended by %s after %v", res.Reason, res.Wall.Round(100*time.Millisecond))
		if res.Detail != "" {
			how += " (" + res.Detail + ")"
		}
		runwatch.Ended(cfg.Log, "ktstr-boot", how, res.GuestFrames, tail.Bytes())
	}
	ve := wire.VMExit{Reason: res.Reason, ExitCode: res.ExitCode, WallNS: uint64(res.Wall), VCPUs: res.VCPUs,
		Detail: res.Detail, EndedBy: res.EndedBy, FirstGuestFrameNS: uint64(res.FirstFrame)}
	if err := stream.WriteHost(ve); err != nil && res.Reason != vmm.ReasonError {
		res.Detail = strings.TrimPrefix(res.Detail+"; ", "; ") + "stdout: " + err.Error()
	}
	return res, nil
}

// supervise ends the run the way ktstr-boot's own VMM does: on a signal,
// GuestExitGrace after the guest's exit frame, poweroffGrace after the
// kernel's power-down message, or when stdout fails.
func supervise(p *qemu.Process, s *vmm.Stream, sigs <-chan os.Signal, mu *sync.Mutex, poweroff *bool, poweroffAt *time.Time, signal *int, stop func(*qemu.Process, string, string)) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var exitSeen time.Time
	for {
		select {
		case <-p.Done():
			return
		case sig := <-sigs:
			n := int(syscall.SIGTERM)
			if ss, ok := sig.(syscall.Signal); ok {
				n = int(ss)
			}
			mu.Lock()
			*signal = n
			mu.Unlock()
			stop(p, vmm.ReasonSignal, fmt.Sprintf("stopped by %s (%d)", sig, n))
			return
		case <-t.C:
			if _, ok := s.GuestExit(); ok {
				if exitSeen.IsZero() {
					exitSeen = time.Now()
				} else if time.Since(exitSeen) > vmm.GuestExitGrace {
					stop(p, vmm.ReasonGuestExit, fmt.Sprintf("guest did not shut down within %s of its exit frame", vmm.GuestExitGrace))
					return
				}
			}
			mu.Lock()
			po, at := *poweroff, *poweroffAt
			mu.Unlock()
			if po && time.Since(at) > poweroffGrace {
				stop(p, vmm.ReasonPoweroff, "guest kernel printed \"reboot: Power down\" and QEMU did not exit")
				return
			}
			if err := s.Err(); err != nil {
				stop(p, vmm.ReasonError, "stdout: "+err.Error())
				return
			}
		}
	}
}

// gatedWriter holds the guest's bytes until the vm_start frame is out.
type gatedWriter struct {
	w    io.Writer
	open chan struct{}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.w.Write(p)
}

func memDir(dir string) string {
	if dir != "" {
		return dir
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".ktstr-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// sizedFile creates path as a sparse file of size bytes.
func sizedFile(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("guest RAM file: %w", err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return fmt.Errorf("guest RAM file %s: %w", path, err)
	}
	return f.Close()
}

// joinInitramfs returns the one initramfs file QEMU takes: the only blob,
// or the blobs concatenated into dir.
func joinInitramfs(dir string, blobs []string) (string, error) {
	switch len(blobs) {
	case 0:
		return "", errors.New("QEMU boot needs an initramfs (--initramfs)")
	case 1:
		return blobs[0], nil
	}
	out, err := os.Create(filepath.Join(dir, "initramfs"))
	if err != nil {
		return "", fmt.Errorf("concatenate the initramfs blobs: %w", err)
	}
	defer out.Close()
	for _, b := range blobs {
		in, err := os.Open(b)
		if err != nil {
			return "", fmt.Errorf("read --initramfs: %w", err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			return "", fmt.Errorf("concatenate the initramfs blobs: %w", err)
		}
	}
	return out.Name(), out.Close()
}

// cmdlineOf returns the -append value of QEMU's arguments.
func cmdlineOf(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-append" {
			return args[i+1]
		}
	}
	return ""
}

func logf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, "ktstr-boot: "+format+"\n", a...)
	}
}
