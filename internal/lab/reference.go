package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/qemu"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// ReferenceOptions configures one plain-TCG boot.
type ReferenceOptions struct {
	// Kernel is the bzImage to boot (required).
	Kernel string
	// Initramfs is the initramfs blob (required).
	Initramfs string
	// CPUs is the number of vCPUs (default 2).
	CPUs int
	// MemoryMiB is guest RAM in MiB (default 512).
	MemoryMiB int
	// Cmdline is appended to the base command line BaseCmdline (plus,
	// under TCG, TCGTimeCmdline's TSC options).
	Cmdline string
	// Timeout is the hard limit on the run; QEMU is killed when it passes
	// (default 120 s).
	Timeout time.Duration
	// StreamPath, when set, receives a copy of the bytes the guest writes
	// to its "ktstr" virtio-serial port, through wire.GuestRelay: guest
	// frames unchanged, host frames the guest forged and other corrupt
	// bytes with each 'K' defused (as ktstr-boot's stdout).
	StreamPath string
	// Stream, when set, receives the stream bytes live as they arrive.
	Stream io.Writer
	// ConsolePath, when set, receives a copy of the serial console.
	ConsolePath string
	// Console, when set, receives the console live.
	Console io.Writer
	// MemFile, when set, backs guest RAM with this file
	// (memory-backend-file, share=on) so that a host process can read
	// guest memory while it runs (ktstr-monitor).
	MemFile string
	// ExtraArgs are appended to QEMU's arguments.
	ExtraArgs []string
	// QEMU is the binary (default FindQEMU()).
	QEMU string
	// MachineOpts are appended to "-M microvm," (for example "rtc=off").
	MachineOpts string
	// Accel and CPUModel default to qemu.DefaultAccel and "max". The
	// nested lab's L2 guests use the same arguments with "kvm" and "host".
	Accel, CPUModel string
	// Name labels the run's evidence directory when it fails
	// (evidence.go; default "reference").
	Name string
	// Log, when set, receives the run's warnings as they happen: no
	// stream byte for HangWarn, and a run that ended without a guest_exit
	// frame (with the console's tail).
	Log io.Writer
	// HangWarn is the silence on the stream that earns a warning on Log
	// (0: none).
	HangWarn time.Duration
}

// Result is what one boot produced: QEMU's result (pkg/qemu owns its
// fields; Stream is every byte the guest wrote to its "ktstr" port after
// the guest relay, as StreamPath has it) and what the lab adds.
type Result struct {
	qemu.Result
	// Frames is the number of valid frames in Stream; GuestExit says
	// whether one of them is a guest_exit.
	Frames    int
	GuestExit bool
	// Evidence is where a failed run's outputs were kept, with the
	// console's tail (evidence.go); "" for a run that did not fail.
	Evidence string
}

// Err returns nil for a run that ended by itself with exit status 0, and an
// error saying what went wrong otherwise (timeout, QEMU failure, a guest
// that wrote frames but no guest_exit), naming the kept evidence.
func (r *Result) Err() error {
	var err error
	switch {
	case r.TimedOut:
		err = fmt.Errorf("QEMU killed after the %v timeout", r.Wall.Round(time.Second))
	case r.ExitCode != 0:
		err = fmt.Errorf("QEMU exited with status %d: %s", r.ExitCode, strings.TrimSpace(tail(r.Stderr, 300)))
	case r.Frames > 0 && !r.GuestExit:
		err = fmt.Errorf("the guest wrote %d frames but no guest_exit; QEMU exited 0 after %v (the guest kernel rebooted or powered off under its init)", r.Frames, r.Wall.Round(100*time.Millisecond))
	default:
		return nil
	}
	if r.Evidence != "" {
		return fmt.Errorf("%w; %s", err, r.Evidence)
	}
	return fmt.Errorf("%w; console tail: %s", err, tail(r.Console, 300))
}

func tail(b []byte, n int) string { return qemu.Tail(b, n) }

// BaseCmdline is the kernel command line every lab boot starts with
// (pkg/qemu owns it).
const BaseCmdline = qemu.BaseCmdline

// DefaultAccel is the accelerator of a reference boot that names none:
// single-threaded TCG (all vCPUs on one host thread, round robin).
// Multi-threaded TCG runs the guest kernel's live text patching on several
// host threads at once, and a vCPU can execute a stale int3 of a
// just-patched static branch: "Oops: int3" in __schedule or
// ttwu_queue_wakelist on the other vCPU, "Fatal exception in interrupt",
// and with panic=-1 a reboot that QEMU -no-reboot turns into exit 0 with
// no guest_exit frame. sched_ext flips static keys when a scheduler
// attaches and detaches, so every ktstr-init run with a scheduler patches
// text twice: 4 of 60 two-vCPU scx_simple boots ended that way under
// multi-threaded TCG, 0 of 60 single-threaded (issue 20, README).
const DefaultAccel = qemu.DefaultAccel

// ReferenceArgs returns QEMU's arguments for opts. stream is the chardev
// backend for the guest's "ktstr" port ("socket,path=S" to connect to a
// unix socket, "file,path=F" to write a file); empty leaves the port out.
func ReferenceArgs(opts *ReferenceOptions, stream string) []string {
	o := opts.qemu()
	return qemu.Args(&o, stream)
}

func (opts *ReferenceOptions) qemu() qemu.Options {
	return qemu.Options{
		Kernel: opts.Kernel, Initramfs: opts.Initramfs, CPUs: opts.CPUs, MemoryMiB: opts.MemoryMiB,
		Cmdline: opts.Cmdline, Timeout: opts.Timeout, StreamPath: opts.StreamPath, Stream: opts.Stream,
		ConsolePath: opts.ConsolePath, Console: opts.Console, MemFile: opts.MemFile, ExtraArgs: opts.ExtraArgs,
		QEMU: opts.QEMU, MachineOpts: opts.MachineOpts, Accel: opts.Accel, CPUModel: opts.CPUModel,
	}
}

// Reference boots opts.Kernel with opts.Initramfs under plain QEMU TCG
// (pkg/qemu) and waits for QEMU to exit or the timeout to kill it. The
// error is non-nil only when the run could not be started or its outputs
// not written; check Result.Err (or TimedOut and ExitCode) for how the run
// itself ended.
func Reference(ctx context.Context, opts ReferenceOptions) (*Result, error) {
	// The guest's bytes go through the same relay as ktstr-boot's stdout,
	// so that a guest cannot forge host frames in the recording either
	// (see wire.GuestRelay): the stream buffer, the stream file and the
	// live writer all get the relay's output.
	var stream bytes.Buffer
	sinks := []io.Writer{&stream}
	if opts.StreamPath != "" {
		f, err := os.Create(opts.StreamPath)
		if err != nil {
			return nil, fmt.Errorf("reference boot: stream file: %w", err)
		}
		defer f.Close()
		sinks = append(sinks, f)
	}
	if opts.Stream != nil {
		sinks = append(sinks, opts.Stream)
	}
	relay := wire.NewGuestRelay(io.MultiWriter(sinks...))
	counted := &countingWriter{w: relay}
	o := opts.qemu()
	console, watch := watchReference(&opts, o.Console, counted)
	o.Console = console
	o.Stream, o.StreamPath, o.DiscardStream = counted, "", true
	q, err := qemu.Run(ctx, o)
	watch.Stop()
	if q == nil {
		if err != nil {
			err = fmt.Errorf("reference boot: %w", err)
		}
		return nil, err
	}
	if rerr := relay.Close(); err == nil && rerr != nil {
		err = fmt.Errorf("reference boot: reading the guest stream: %w", rerr)
	}
	r := &Result{Result: *q}
	r.Stream, r.StreamPath = stream.Bytes(), opts.StreamPath
	finishReference(ctx, &opts, r)
	return r, err
}

// L2Options returns options for booting kernel and initramfs as an L2
// guest with QEMU -enable-kvm inside the nested lab's L1 (paths are L1
// paths). The machine has no CMOS RTC: every RTC port access from L2 is an
// exit to L1's QEMU process, which the nested lab runs slowly enough that
// the kernel's RTC probe and its update-in-progress polling took up to a
// minute of an L2 boot (sampled L2 RIPs sat in rtc_cmos_read and
// delay_tsc); without the RTC the kernel takes wall time from kvm-clock.
//
// The command line starts with L2Cmdline ("idle=poll"): an L2 that halts
// when idle was seen to leave the TCG-emulated L1 idle for good (its own
// timer interrupts lost) in a fraction of boots, see docs/nested-lab.md.
func L2Options(kernel, initramfs string, cpus, memMiB int, cmdline string) ReferenceOptions {
	return ReferenceOptions{
		Kernel: kernel, Initramfs: initramfs, CPUs: cpus, MemoryMiB: memMiB,
		Accel: "kvm", CPUModel: "host", MachineOpts: "rtc=off", Cmdline: strings.TrimSpace(L2Cmdline + " " + cmdline),
	}
}

// L2Cmdline is what every nested-lab L2 kernel gets on its command line
// (a lab workaround, not a ktstr default).
const L2Cmdline = "idle=poll"

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
