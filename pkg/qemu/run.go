package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options configures one boot under QEMU.
type Options struct {
	// Kernel is the bzImage to boot (required).
	Kernel string
	// Initramfs is the initramfs blob (required).
	Initramfs string
	// CPUs is the number of vCPUs (default 2). Ignored when SMP is set.
	CPUs int
	// SMP, when set, replaces "-smp CPUs" (for example the topology's
	// "-smp" value and "-numa" options from TopologyArgs).
	SMP []string
	// MemoryMiB is guest RAM in MiB (default 512).
	MemoryMiB int
	// Cmdline is appended to the base command line BaseCmdline (plus,
	// under TCG, TCGTimeCmdline's TSC options). NoBaseCmdline leaves both
	// out.
	Cmdline       string
	NoBaseCmdline bool
	// Timeout is the hard limit on the run; QEMU is killed when it passes
	// (default 120 s).
	Timeout time.Duration
	// StreamPath, when set, receives a copy of the bytes the guest writes
	// to its "ktstr" virtio-serial port.
	StreamPath string
	// Stream, when set, receives the stream bytes live as they arrive.
	Stream io.Writer
	// DiscardStream keeps the stream out of Result.Stream (long runs whose
	// stream goes only to Stream).
	DiscardStream bool
	// ConsolePath, when set, receives a copy of the serial console.
	ConsolePath string
	// Console, when set, receives the console live.
	Console io.Writer
	// ConsoleKeep bounds Result.Console and Result.Stderr to about their
	// last ConsoleKeep bytes (0: everything).
	ConsoleKeep int
	// MemFile, when set, backs guest RAM with this file
	// (memory-backend-file, share=on) so that a host process can read
	// guest memory while it runs (ktstr-monitor).
	MemFile string
	// ExtraArgs are appended to QEMU's arguments.
	ExtraArgs []string
	// QEMU is the binary (default Find()).
	QEMU string
	// Machine is QEMU's machine type: "microvm" (default) or "pc" (for
	// shapes microvm cannot express: several LLCs or NUMA nodes). The
	// stream port is virtio-mmio on microvm, virtio-pci on pc.
	Machine string
	// MachineOpts are appended to "-M microvm," (for example "rtc=off").
	MachineOpts string
	// NodeMemFiles, with SMP's -numa options, back each NUMA node's RAM
	// with its own file (memory-backend-file ids "node0", "node1", ...;
	// QEMU has no offset into one file). MemFile is then ignored.
	NodeMemFiles []NodeMem
	// Accel and CPUModel default to DefaultAccel and "max". Hardware KVM
	// takes "kvm" and "host".
	Accel, CPUModel string
	// PinCPUs, when set, pins QEMU to these host CPUs (KTSTR_CPUS).
	PinCPUs []int
	// Started, when set, is called once QEMU runs, with its process.
	Started func(*Process)
}

// Result is what one boot produced.
type Result struct {
	// Stream is every byte the guest wrote to its "ktstr" port.
	Stream []byte
	// StreamPath is Options.StreamPath, echoed.
	StreamPath string
	// Console is the serial console text.
	Console []byte
	// Stderr is QEMU's own error output.
	Stderr []byte
	// ExitCode is QEMU's exit status; -1 when it was killed.
	ExitCode int
	// TimedOut is true when the hard timeout killed QEMU.
	TimedOut bool
	// Wall is the time from QEMU's start to its exit.
	Wall time.Duration
	// FirstStream is the time from QEMU's start to the first byte on the
	// guest's ktstr port (0 when none came).
	FirstStream time.Duration
	// Args is QEMU's full command line, for reproducing the run.
	Args []string
}

// Err returns nil for a run that ended by itself with exit status 0, and an
// error saying what went wrong otherwise (timeout, QEMU failure).
func (r *Result) Err() error {
	switch {
	case r.TimedOut:
		return fmt.Errorf("QEMU killed after the %v timeout; console tail: %s", r.Wall.Round(time.Second), Tail(r.Console, 300))
	case r.ExitCode != 0:
		return fmt.Errorf("QEMU exited with status %d: %s", r.ExitCode, strings.TrimSpace(Tail(r.Stderr, 300)))
	}
	return nil
}

// Tail returns the last n bytes of b as valid UTF-8.
func Tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// DefaultAccel is the accelerator of a run that names none:
// single-threaded TCG (all vCPUs on one host thread, round robin).
// Multi-threaded TCG runs the guest kernel's live text patching on several
// host threads at once and a vCPU can execute a stale int3 of a
// just-patched static branch (an "Oops: int3", then a panic=-1 reboot that
// -no-reboot turns into exit 0 without a guest_exit frame); sched_ext
// flips static keys whenever a scheduler attaches or detaches (about 1
// boot in 10 oopsed here with two vCPUs; see the README's guest notes).
const DefaultAccel = "tcg,thread=single"

// BaseCmdline is the kernel command line every QEMU boot starts with: the
// console on the 8250 port, reboot (and so QEMU exit, with -no-reboot) on
// panic, and the triple-fault reboot that needs no firmware.
const BaseCmdline = "console=ttyS0 panic=-1 reboot=t"

// Args returns QEMU's arguments for opts. stream is the chardev backend
// for the guest's "ktstr" port ("socket,path=S" to connect to a unix
// socket, "file,path=F" to write a file); empty leaves the port out.
func Args(opts *Options, stream string) []string {
	cpus, mem := opts.CPUs, opts.MemoryMiB
	if cpus <= 0 {
		cpus = 2
	}
	if mem <= 0 {
		mem = 512
	}
	machine := or(opts.Machine, "microvm")
	if opts.MachineOpts != "" {
		machine += "," + opts.MachineOpts
	}
	var args []string
	for i, n := range opts.NodeMemFiles {
		args = append(args, "-object", fmt.Sprintf("memory-backend-file,id=node%d,size=%d,mem-path=%s,share=on", i, n.Size, n.Path))
	}
	if opts.MemFile != "" && len(opts.NodeMemFiles) == 0 {
		args = append(args, "-object", fmt.Sprintf("memory-backend-file,id=mem,size=%dM,mem-path=%s,share=on", mem, opts.MemFile))
		machine += ",memory-backend=mem"
	}
	smp := opts.SMP
	if len(smp) == 0 {
		smp = []string{"-smp", strconv.Itoa(cpus)}
	}
	args = append(args, "-M", machine, "-accel", or(opts.Accel, DefaultAccel), "-cpu", or(opts.CPUModel, "max"))
	args = append(args, smp...)
	args = append(args, "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-reboot", "-display", "none",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-device", serialDevice(opts.Machine),
	)
	if stream != "" {
		args = append(args,
			"-chardev", stream+",id=ktstr",
			"-device", "virtserialport,chardev=ktstr,name=ktstr")
	}
	var cmdline []string
	if !opts.NoBaseCmdline {
		cmdline = append(cmdline, BaseCmdline)
		if strings.HasPrefix(or(opts.Accel, DefaultAccel), "tcg") {
			if t := TCGTimeCmdline(); t != "" {
				cmdline = append(cmdline, t)
			}
		}
	}
	if opts.Cmdline != "" {
		cmdline = append(cmdline, opts.Cmdline)
	}
	args = append(args, "-kernel", opts.Kernel, "-initrd", opts.Initramfs, "-append", strings.Join(cmdline, " "))
	return append(args, opts.ExtraArgs...)
}

// Run boots opts.Kernel with opts.Initramfs under QEMU and waits for QEMU
// to exit or the timeout (or ctx) to kill it. The error is non-nil only
// when the run could not be started or its outputs not written; check
// Result.Err (or TimedOut and ExitCode) for how the run itself ended.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Kernel == "" || opts.Initramfs == "" {
		return nil, fmt.Errorf("QEMU boot needs a kernel and an initramfs")
	}
	for _, f := range []string{opts.Kernel, opts.Initramfs} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("QEMU boot: %w", err)
		}
	}
	q := opts.QEMU
	if q == "" {
		var err error
		if q, err = Find(); err != nil {
			return nil, err
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 120 * time.Second
	}
	dir, err := os.MkdirTemp("", "ktstr-qemu-")
	if err != nil {
		return nil, fmt.Errorf("QEMU boot: %w", err)
	}
	defer os.RemoveAll(dir)

	var stream bytes.Buffer
	var sinks []io.Writer
	if !opts.DiscardStream {
		sinks = append(sinks, &stream)
	}
	var streamFile *os.File
	if opts.StreamPath != "" {
		if streamFile, err = os.Create(opts.StreamPath); err != nil {
			return nil, fmt.Errorf("QEMU boot: stream file: %w", err)
		}
		defer streamFile.Close()
		sinks = append(sinks, streamFile)
	}
	if opts.Stream != nil {
		sinks = append(sinks, opts.Stream)
	}
	sink, err := newStreamSink(dir, io.MultiWriter(sinks...))
	if err != nil {
		return nil, err
	}
	var conFile *os.File
	console := opts.Console
	if opts.ConsolePath != "" {
		if conFile, err = os.Create(opts.ConsolePath); err != nil {
			sink.close()
			return nil, fmt.Errorf("QEMU boot: console file: %w", err)
		}
		defer conFile.Close()
		if console != nil {
			console = io.MultiWriter(conFile, console)
		} else {
			console = conFile
		}
	}
	p := &Process{QEMU: q, Args: Args(&opts, "socket,path="+sink.path), Timeout: opts.Timeout, Console: console, Keep: opts.ConsoleKeep, CPUs: opts.PinCPUs}
	if err := p.Start(ctx); err != nil {
		sink.close()
		return nil, err
	}
	if opts.Started != nil {
		opts.Started(p)
	}
	code, wall := p.Wait()
	serr := sink.close()
	var first time.Duration
	if t := sink.firstByte(); !t.IsZero() {
		first = t.Sub(p.start)
	}
	r := &Result{
		FirstStream: first,
		Stream:      stream.Bytes(), StreamPath: opts.StreamPath,
		Console: p.conBuf.Bytes(), Stderr: p.errBuf.Bytes(),
		ExitCode: code, TimedOut: p.TimedOut(), Wall: wall,
		Args: append([]string{q}, p.Args...),
	}
	if serr != nil {
		return r, fmt.Errorf("QEMU boot: reading the guest stream: %w", serr)
	}
	if streamFile != nil {
		if err := streamFile.Close(); err != nil {
			return r, fmt.Errorf("QEMU boot: stream file: %w", err)
		}
	}
	return r, nil
}

// NodeMem is one NUMA node's RAM file.
type NodeMem struct {
	Path string
	Size uint64
}

func serialDevice(machine string) string {
	if or(machine, "microvm") == "microvm" {
		return "virtio-serial-device"
	}
	return "virtio-serial-pci"
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
