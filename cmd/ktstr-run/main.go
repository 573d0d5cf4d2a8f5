// Command ktstr-run: see man/ktstr-run.1.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"github.com/ktstr-go/ktstr/pkg/pipeline"
	"github.com/urfave/cli/v2"
)

func main() { cmdutil.Main(app()) }

func app() *cli.App {
	return &cli.App{
		Name:      "ktstr-run",
		Usage:     "one run, one verdict: build the initramfs, reserve host CPUs, boot, monitor and decode",
		ArgsUsage: "[-- scheduler arguments]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kernel", Usage: "bzImage to boot", EnvVars: []string{"KTSTR_KERNEL"}},
			&cli.StringFlag{Name: "scheduler", Usage: "sched_ext scheduler binary (none: the EEVDF baseline)"},
			&cli.StringFlag{Name: "scenario", Usage: "scenario: a catalog name (ktstr-init --list-scenarios) or a FILE (default: the guest's default)"},
			&cli.StringFlag{Name: "topology", Value: pipeline.DefaultTopology, Usage: "guest shape NnNlNcNt"},
			&cli.StringFlag{Name: "memory", Value: pipeline.DefaultMemory, Usage: "guest RAM (K/M/G suffixes)"},
			&cli.DurationFlag{Name: "timeout", Value: pipeline.DefaultTimeout, Usage: "ktstr-boot's --timeout"},
			&cli.StringFlag{Name: "vmm", Value: pipeline.DefaultVMM, Usage: "ktstr-boot's --vmm: auto, kvm or qemu"},
			&cli.StringFlag{Name: "vmlinux", Usage: "the kernel's vmlinux for ktstr-monitor's guest-memory sampling (default: its own, $KTSTR_VMLINUX)"},
			&cli.StringFlag{Name: "console", Usage: "write the guest console to FILE instead of stderr"},
			&cli.StringFlag{Name: "append", Usage: "extra kernel command line (ktstr-boot --append)"},
			&cli.StringFlag{Name: "save", Usage: "save the raw frame stream to FILE (tee)"},
			&cli.BoolFlag{Name: "json", Usage: "print the verdict as a JSON record"},
			&cli.BoolFlag{Name: "auto-repro", Usage: "when the scheduler fails (error exit, stall, death), boot again with BPF probes and print the timeline that led to it"},
			&cli.StringFlag{Name: "reserve", Value: pipeline.DefaultReserve, Usage: "what to reserve on the host: cpus (a CPU per vCPU, LLCs shared) or llcs (whole LLCs of its own)"},
			&cli.StringFlag{Name: "sysfs-root", Value: hosttopo.DefaultRoot, Usage: "read the host topology from sysfs mounted at `DIR` (tests; passed to ktstr-hostlock)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the pipeline as a shell script and exit"},
		},
		Action: run,
	}
}

func run(c *cli.Context) error {
	s := &pipeline.Spec{
		Kernel: c.String("kernel"), Scheduler: c.String("scheduler"), SchedArgs: c.Args().Slice(),
		Scenario: c.String("scenario"), Topology: c.String("topology"), Memory: c.String("memory"),
		Timeout: c.Duration("timeout"), VMM: c.String("vmm"), Vmlinux: c.String("vmlinux"),
		Console: c.String("console"), Append: c.String("append"), Save: c.String("save"), JSON: c.Bool("json"),
		Reserve: c.String("reserve"), SysfsRoot: c.String("sysfs-root"),
	}
	topo, err := s.Check()
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	defer s.Release()
	self, _ := os.Executable()
	tools, err := pipeline.FindTools(self)
	if err != nil {
		return cmdutil.Exit(pipeline.ExitTool, err)
	}
	// --reserve cpus: a host CPU per vCPU, but no more than this process
	// may use (a bigger guest is overcommitted); --reserve llcs: the
	// fewest whole LLCs that hold the vCPUs (a bigger guest is refused).
	resv, err := s.HostReservation(topo)
	var fe *pipeline.FitError
	if errors.As(err, &fe) {
		return cmdutil.UsageError("%v", err)
	} else if err != nil {
		return cmdutil.Exit(pipeline.ExitTool, err)
	}
	if c.Bool("dry-run") {
		fmt.Print(s.Script(tools, resv))
		return nil
	}
	if s.Save != "" {
		// Find out now, not after the boot, that the stream cannot be saved.
		f, err := os.OpenFile(s.Save, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return cmdutil.UsageError("--save: %v", err)
		}
		f.Close()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var res *pipeline.Result
	if c.Bool("auto-repro") {
		var rep *pipeline.Repro
		res, rep, err = pipeline.RunAutoRepro(context.Background(), s, tools, resv, os.Stdout, os.Stderr, sigs)
		if rep != nil && rep.Skipped != "" {
			fmt.Fprintf(os.Stderr, "ktstr-run: auto-repro: no second boot: %s\n", rep.Skipped)
		}
	} else {
		res, err = pipeline.Run(context.Background(), s, tools, resv, os.Stdout, os.Stderr, sigs)
	}
	if err != nil && res == nil {
		return cmdutil.Exit(pipeline.ExitTool, err)
	}
	if err != nil { // the auto-repro run's: the first run's result stands
		fmt.Fprintf(os.Stderr, "ktstr-run: %v\n", err)
	}
	if res.Exit == pipeline.ExitPass {
		return nil
	}
	return cmdutil.Exitf(res.Exit, "%s", res.Why)
}
