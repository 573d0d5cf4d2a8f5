// Command ktstr-monitor: see man/ktstr-monitor.1.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kernel"
	"github.com/ktstr-go/ktstr/pkg/kernelsym"
	"github.com/ktstr-go/ktstr/pkg/monitor"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

const (
	exitViolations = 1
	exitBad        = 2
	exitNoVerdict  = 3 // nothing to judge: empty stream, no guest frame, guest memory not understood
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	d := monitor.DefaultThresholds
	return &cli.App{
		Name:      "ktstr-monitor",
		Usage:     "watch a ktstr stream and sample guest scheduler state from guest memory",
		ArgsUsage: "[STREAM]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "tee", Usage: "copy the input stream to stdout unchanged"},
			&cli.BoolFlag{Name: "emit", Usage: "write monitor_sample and violation frames to stdout"},
			&cli.BoolFlag{Name: "json", Usage: "report violations and the summary as JSON lines"},
			&cli.StringFlag{Name: "guest-mem", Usage: "guest RAM `FILE` (default: the VMStart frame's memory_path)"},
			&cli.StringFlag{Name: "guest-mem-layout", Usage: "`GPA:SIZE:OFFSET[,...]` regions of --guest-mem (default: QEMU's, RAM above 3 GiB moved to 4 GiB)"},
			&cli.StringFlag{Name: "vmlinux", EnvVars: []string{"KTSTR_VMLINUX"}, Usage: "the guest kernel's vmlinux `FILE` (symbols and BTF)"},
			&cli.StringFlag{Name: "system-map", Usage: "take symbols from this System.map `FILE` instead of the vmlinux symbol table"},
			&cli.DurationFlag{Name: "sample-interval", Value: 100e6, Usage: "time between samples"},
			&cli.IntFlag{Name: "vcpus", Usage: "CPUs to sample (default: VMStart's vcpus, else the guest's nr_cpu_ids)"},
			&cli.IntFlag{Name: "vmm-pid", Usage: "VMM process whose vCPU thread times exempt preempted vCPUs (default: VMStart's pid, else the process mapping --guest-mem)"},
			&cli.StringFlag{Name: "control-fifo", Usage: "VMM control `FIFO` for dump requests (default: VMStart's control_fifo)"},
			&cli.StringFlag{Name: "dump-keys", Value: strings.Join(monitor.DefaultDumpKeys, ","), Usage: "SysRq `KEYS` requested on the first sustained violation; empty: never"},
			&cli.StringFlag{Name: "config", Usage: "JSON threshold `FILE`; flags given explicitly override it"},
			&cli.IntFlag{Name: "warmup-samples", Value: d.WarmupSamples, Usage: "samples dropped before evaluation"},
			&cli.IntFlag{Name: "sustain-samples", Value: d.SustainSamples, Usage: "consecutive samples a condition must last"},
			&cli.Float64Flag{Name: "max-imbalance", Value: d.MaxImbalance, Usage: "max/min nr_running ratio limit; 0: off"},
			&cli.UintFlag{Name: "max-dsq-depth", Value: uint(d.MaxLocalDSQ), Usage: "local DSQ depth limit; 0: off"},
			&cli.DurationFlag{Name: "watchdog-timeout", Usage: "write this sched_ext watchdog timeout into the guest kernel while a scheduler is enabled (off by default; at least 500ms)"},
			&cli.BoolFlag{Name: "no-stall", Usage: "do not check for runqueue clock stalls"},
			&cli.BoolFlag{Name: "no-sched-exit", Usage: "a sched_ext error exit is not a violation"},
			&cli.BoolFlag{Name: "no-failed-checks", Usage: "a failed guest check is not a violation"},
		},
		Action: run,
	}
}

func parseLayout(s string) ([]guestmem.Region, error) {
	var out []guestmem.Region
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("--guest-mem-layout region %q: want GPA:SIZE:OFFSET", part)
		}
		var v [3]uint64
		for i := range f {
			n, err := strconv.ParseUint(f[i], 0, 64)
			if err != nil {
				return nil, fmt.Errorf("--guest-mem-layout region %q: %v", part, err)
			}
			v[i] = n
		}
		out = append(out, guestmem.Region{GPA: v[0], Size: v[1], Offset: v[2]})
	}
	return out, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func run(c *cli.Context) error {
	if c.NArg() > 1 {
		return cmdutil.UsageError("at most one STREAM argument (see --help)")
	}
	th := monitor.DefaultThresholds
	if p := c.String("config"); p != "" {
		var err error
		if th, err = monitor.LoadThresholds(p, th); err != nil {
			return cmdutil.Exit(exitBad, err)
		}
	}
	if c.IsSet("warmup-samples") {
		th.WarmupSamples = c.Int("warmup-samples")
	}
	if c.IsSet("sustain-samples") {
		th.SustainSamples = c.Int("sustain-samples")
	}
	if c.IsSet("max-imbalance") {
		th.MaxImbalance = c.Float64("max-imbalance")
	}
	if c.IsSet("max-dsq-depth") {
		th.MaxLocalDSQ = uint32(c.Uint("max-dsq-depth"))
	}
	th.Stall = th.Stall && !c.Bool("no-stall")
	th.SchedExit = th.SchedExit && !c.Bool("no-sched-exit")
	th.FailedChecks = th.FailedChecks && !c.Bool("no-failed-checks")
	if err := th.Validate(); err != nil {
		return cmdutil.UsageError("%v", err)
	}
	if c.Duration("sample-interval") < 10e6 {
		return cmdutil.UsageError("--sample-interval must be at least 10ms")
	}
	if w := c.Duration("watchdog-timeout"); c.IsSet("watchdog-timeout") && (w < 500*time.Millisecond || w > time.Hour) {
		return cmdutil.UsageError("--watchdog-timeout %s: want 500ms to 1h", w)
	}
	o := monitor.Options{
		Tee: c.Bool("tee"), Emit: c.Bool("emit"), JSON: c.Bool("json"),
		GuestMem: c.String("guest-mem"), Interval: c.Duration("sample-interval"),
		VCPUs: c.Int("vcpus"), VMMPID: c.Int("vmm-pid"), ControlFIFO: c.String("control-fifo"),
		WatchdogTimeout: c.Duration("watchdog-timeout"),
		Thresholds:      th, Out: os.Stdout, Report: os.Stdout,
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "ktstr-monitor: "+f+"\n", a...) },
	}
	if k := c.String("dump-keys"); k != "" {
		o.DumpKeys = strings.Split(k, ",")
		if _, err := monitor.DumpRequest(o.DumpKeys); err != nil {
			return cmdutil.UsageError("--dump-keys: %v", err)
		}
	}
	if o.Tee || o.Emit {
		o.Report = os.Stderr // stdout carries frames
	}
	if isTerminal(os.Stderr) {
		o.Status = os.Stderr
	}
	if s := c.String("guest-mem-layout"); s != "" {
		var err error
		if o.Regions, err = parseLayout(s); err != nil {
			return cmdutil.UsageError("%v", err)
		}
	}
	if v := c.String("vmlinux"); v != "" {
		k, err := kernelsym.Load(v, c.String("system-map"))
		if err != nil {
			return cmdutil.Exit(exitBad, err)
		}
		o.Kernel = k
	} else if o.GuestMem != "" {
		return cmdutil.UsageError("--guest-mem needs --vmlinux (or KTSTR_VMLINUX) for the kernel's symbols and BTF")
	} else {
		o.FindKernel = findKernel(c.String("system-map"), o.Logf)
	}
	var in io.Reader = os.Stdin
	if p := c.Args().First(); p != "" && p != "-" {
		f, err := os.Open(p)
		if err != nil {
			return cmdutil.Exit(exitBad, fmt.Errorf("open stream: %w", err))
		}
		defer f.Close()
		in = f
	}
	o.In = in
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := monitor.Run(ctx, o)
	if err != nil {
		return cmdutil.Exit(exitBad, err)
	}
	if res.StreamErrors > 0 {
		return cmdutil.Exitf(exitBad, "the stream had %d corrupt or truncated region(s): results are incomplete", res.StreamErrors)
	}
	if len(res.Violations) > 0 {
		return cmdutil.Exitf(exitViolations, "%d violation(s)", len(res.Violations))
	}
	if nv := res.NoVerdict(); nv != "" {
		return cmdutil.Exitf(exitNoVerdict, "no verdict: %s", nv)
	}
	return nil
}

// findKernel loads the vmlinux that belongs to the bzImage a VMStart
// frame names (beside it, in its source tree or its kernel cache entry:
// kernel.Companions), for runs without --vmlinux.
func findKernel(systemMap string, logf func(string, ...any)) func(string) (*kernelsym.Kernel, error) {
	return func(bzImage string) (*kernelsym.Kernel, error) {
		k := kernel.Companions(bzImage)
		if k.Vmlinux == "" {
			return nil, fmt.Errorf("none beside %s: pass --vmlinux (or KTSTR_VMLINUX)", bzImage)
		}
		logf("vmlinux %s (found for the kernel %s)", k.Vmlinux, bzImage)
		return kernelsym.Load(k.Vmlinux, systemMap)
	}
}
