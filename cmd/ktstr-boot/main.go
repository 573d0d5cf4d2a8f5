// Command ktstr-boot: see man/ktstr-boot.1.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/cpupin"
	"github.com/ktstr-go/ktstr/pkg/interactive"
	"github.com/ktstr-go/ktstr/pkg/kvmprobe"
	"github.com/ktstr-go/ktstr/pkg/qemu"
	"github.com/ktstr-go/ktstr/pkg/runwatch"
	"github.com/ktstr-go/ktstr/pkg/term"
	"github.com/ktstr-go/ktstr/pkg/vmm"
)

func main() {
	term.MaybeGuard() // in --shell's terminal guard child: restore and exit
	start := time.Now()
	cmdutil.Main(&cli.App{
		Name:      "ktstr-boot",
		Usage:     "boot a bzImage under KVM; guest frame stream on stdout, console on stderr",
		ArgsUsage: "[-- extra kernel command line]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kernel", Usage: "bzImage to boot, or a source tree, cached kernel key or version (default: ./linux, ../linux, /boot/vmlinuz-$(uname -r))", EnvVars: []string{"KTSTR_KERNEL"}},
			&cli.StringSliceFlag{Name: "initramfs", Usage: "initramfs blob; repeat to concatenate several"},
			&cli.IntFlag{Name: "cpus", Value: 1, Usage: "number of vCPUs (shorthand for --topology 1n1l<N>c1t)"},
			&cli.StringFlag{Name: "memory", Value: "1G", Usage: "guest RAM (K/M/G suffixes)"},
			&cli.DurationFlag{Name: "timeout", Value: vmm.DefaultTimeout, Usage: "stop the guest after this long (0: never)"},
			&cli.StringFlag{Name: "console", Usage: "write the guest console (COM1, hvc0) to FILE instead of stderr"},
			&cli.DurationFlag{Name: "hang-warn", Value: runwatch.DefaultQuiet, Usage: "warn on stderr, with the last console line, each time no guest frame arrived for this long (0: never)"},
			&cli.StringFlag{Name: "com2", Usage: "write COM2 (ttyS1) to FILE instead of the console"},
			&cli.StringFlag{Name: "control-fifo", Value: "auto", Usage: "control FIFO path (auto: in $TMPDIR; none: no FIFO)"},
			&cli.StringFlag{Name: "append", Usage: "extra kernel command line (after the defaults)"},
			&cli.BoolFlag{Name: "no-default-cmdline", Usage: "do not start from the default kernel command line"},
			// Topology and performance mode (topology.go).
			&cli.StringFlag{Name: "topology", Usage: "guest shape NnNlNcNt: NUMA nodes, LLCs, cores per LLC, threads per core (e.g. 2n4l2c1t)"},
			&cli.BoolFlag{Name: "shell", Usage: "interactive shell on the guest's hvc0 (terminal raw; Ctrl-A X quits)"},
			&cli.StringFlag{Name: "exec", Usage: "run CMD in the guest through hvc0 and exit with its status"},
			&cli.BoolFlag{Name: "perf-mode", Usage: "one dedicated host CPU per vCPU (KTSTR_CPUS or the allowed set), SCHED_FIFO vCPUs, huge-page memory, HLT/PAUSE exits off"},
			&cli.BoolFlag{Name: "summary", Usage: "print a one-line timing summary on stderr at the end"},
			&cli.StringFlag{Name: "vmm", Value: qemu.ModeKVM, EnvVars: []string{"KTSTR_VMM"}, Usage: "kvm (this VMM on /dev/kvm), qemu (QEMU: -accel kvm on hardware KVM, else TCG) or auto (this VMM on hardware KVM, else QEMU TCG)"},
			&cli.BoolFlag{Name: "probe", Usage: "decide whether /dev/kvm is hardware-assisted (exit 0) or not (exit 1), print the verdict and the evidence"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("probe") {
				return probe()
			}
			return run(c, start)
		},
	})
}

func run(c *cli.Context, start time.Time) error {
	switch c.String("vmm") {
	case qemu.ModeKVM, qemu.ModeQEMU, qemu.ModeAuto:
	default:
		return cmdutil.UsageError("--vmm %q: want kvm, qemu or auto", c.String("vmm"))
	}
	kpath, releaseKernel, err := resolveKernel(c.String("kernel"))
	defer releaseKernel()
	if err != nil {
		return err
	}
	if c.Int("cpus") < 1 {
		return cmdutil.UsageError("--cpus must be at least 1")
	}
	topo, err := topologyFlag(c)
	if err != nil {
		return err
	}
	mem, err := vmm.ParseSize(c.String("memory"))
	if err != nil {
		return cmdutil.UsageError("--memory: %v", err)
	}
	if c.Duration("timeout") < 0 {
		return cmdutil.UsageError("--timeout must not be negative")
	}
	if c.Duration("hang-warn") < 0 {
		return cmdutil.UsageError("--hang-warn must not be negative (0 turns the warning off)")
	}
	if err := vmm.CheckMemory(mem); err != nil {
		return cmdutil.UsageError("--memory: %v", err)
	}
	clock := vmm.NewSetupClock(start)
	clock.Mark(vmm.PhaseArgs)
	// Regular files only, sizes checked against guest RAM before reading;
	// the VMM reads them straight into guest RAM.
	kern, err := vmm.OpenKernel(kpath, mem)
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	defer kern.Close()
	initrd, err := vmm.OpenInitramfs(c.StringSlice("initramfs"), kern, mem)
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	defer initrd.Close()
	clock.Mark(vmm.PhaseOpenInputs)
	cpus, _, err := cpupin.FromEnv()
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	choice, err := qemu.Choose(c.String("vmm"), func() kvmprobe.Result { return kvmprobe.Probe(kvmprobe.Options{}) })
	if err != nil { // the mode is valid: QEMU is missing
		return cmdutil.Exit(vmm.ExitVMMError, err)
	}
	if c.String("vmm") != qemu.ModeKVM { // it probed: say what it chose and why
		fmt.Fprintf(os.Stderr, "ktstr-boot: VMM: %s (%s)\n", choice, choice.Why)
	}
	if choice.QEMU && c.Bool("perf-mode") {
		return cmdutil.UsageError("--perf-mode needs ktstr-boot's own VMM (--vmm kvm on hardware KVM); the QEMU path (%s) does not offer it", choice)
	}
	perf, err := perfFlag(c, len(topo.CPUs), mem, cpus)
	if err != nil {
		return err
	}
	if perf != nil {
		cpus = nil // each vCPU gets its own CPU from the plan
	}
	var parts []string
	if !c.Bool("no-default-cmdline") && !choice.QEMU {
		parts = append(parts, vmm.DefaultCmdline())
	}
	ask := interactive.Request{Shell: c.Bool("shell"), Exec: c.String("exec"), HasExec: c.IsSet("exec")}
	if s, err := ask.Cmdline(); err != nil {
		return cmdutil.UsageError("%v", err)
	} else if s != "" {
		parts = append(parts, s)
	}
	if s := c.String("append"); s != "" {
		parts = append(parts, s)
	}
	if c.Args().Len() > 0 {
		parts = append(parts, strings.Join(c.Args().Slice(), " "))
	}
	console := os.Stderr
	if p := c.String("console"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return cmdutil.UsageError("--console: %v", err)
		}
		defer f.Close()
		console = f
	}
	cfg := vmm.Config{
		KernelFile: kern, KernelPath: kpath, Initramfs: initrd, Setup: clock,
		Cmdline: strings.Join(parts, " "), VCPUs: len(topo.CPUs), Memory: mem,
		Topology: topo, Perf: perf, Log: os.Stderr,
		Timeout: c.Duration("timeout"), Stream: os.Stdout, Console: console, CPUs: cpus,
		Start: start, HangWarn: c.Duration("hang-warn"), ReportNoExit: true,
	}
	if p := c.String("com2"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return cmdutil.UsageError("--com2: %v", err)
		}
		defer f.Close()
		cfg.COM2 = f
	}
	switch p := c.String("control-fifo"); p {
	case "none", "":
	case "auto":
		cfg.ControlFIFO = vmm.AutoControlFIFO(os.TempDir())
	default:
		cfg.ControlFIFO = p
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	signal.Ignore(syscall.SIGPIPE) // a closed stdout becomes an EPIPE error, reported as such
	cfg.Signals = sigs
	clock.Mark(vmm.PhaseConfig)

	if choice.QEMU {
		return runQEMU(c, choice, cfg, c.StringSlice("initramfs"), ask)
	}
	if ask.Shell || ask.HasExec {
		// No frames in these modes: nothing to warn about.
		cfg.HangWarn, cfg.ReportNoExit = 0, false
		return runInteractive(ask, cfg)
	}
	res, err := vmm.Run(cfg)
	if err != nil {
		return cmdutil.Exit(vmm.ExitVMMError, err)
	}
	if c.Bool("summary") {
		fmt.Fprintf(os.Stderr, "ktstr-boot: summary reason=%s exit=%d wall_s=%.3f first_frame_s=%.3f guest_frames=%d vcpus=%d kvm_exits=%d setup_ms=%.3f\n",
			res.Reason, res.ExitCode, res.Wall.Seconds(), res.FirstFrame.Seconds(), res.GuestFrames, res.VCPUs, res.Stats["exits"], float64(res.Setup.Microseconds())/1000)
	}
	if res.ExitCode == 0 {
		return nil
	}
	return cmdutil.Exitf(res.ExitCode, "%s", res.Summary())
}

// runInteractive runs cfg for --shell or --exec and turns the outcome into
// ktstr-boot's exit code.
func runInteractive(ask interactive.Request, cfg vmm.Config) error {
	var out interactive.Outcome
	var err error
	if ask.Shell {
		out, err = interactive.Shell(cfg, os.Stdin, os.Stdout, os.Stderr)
	} else {
		out, err = interactive.Exec(cfg, os.Stdout)
	}
	switch {
	case errors.Is(err, interactive.ErrNoTerminal):
		return cmdutil.UsageError("%v", err)
	case err != nil:
		return cmdutil.Exit(vmm.ExitVMMError, err)
	case out.Code != 0:
		return cmdutil.Exit(out.Code, out.Err)
	}
	return nil
}

// probe prints pkg/kvmprobe's verdict on /dev/kvm and its evidence, and
// exits 0 for hardware-assisted KVM, 1 otherwise.
func probe() error {
	r := kvmprobe.Probe(kvmprobe.Options{})
	fmt.Printf("kvm: %s\n", r.Kind)
	if r.Kind != kvmprobe.None {
		fmt.Printf("guest_rate_mps %.3f\nhost_rate_mps %.3f\nratio %.5f\nthreshold %.2f\nrounds %d\ncreate_vm_ms %.3f\n",
			r.GuestRate/1e6, r.HostRate/1e6, r.Ratio, r.Threshold, r.Rounds, float64(r.CreateVM.Microseconds())/1000)
	}
	fmt.Printf("reason: %s\n", r.Reason)
	if !r.Hardware() {
		return cmdutil.Exit(1, fmt.Errorf("no hardware-assisted KVM: %s", r.Reason))
	}
	return nil
}
