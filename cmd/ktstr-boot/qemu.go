package main

import (
	"context"
	"fmt"
	"os"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/interactive"
	"github.com/ktstr-go/ktstr/pkg/qemu"
	"github.com/ktstr-go/ktstr/pkg/qemuvmm"
	"github.com/ktstr-go/ktstr/pkg/vmm"
	"github.com/urfave/cli/v2"
)

// runQEMU runs cfg with QEMU as the VMM (--vmm qemu, or auto without
// hardware KVM): same stream, same exit codes (pkg/qemu.Boot). What only
// ktstr-boot's own VMM offers is refused up front.
func runQEMU(c *cli.Context, choice qemu.Choice, cfg vmm.Config, initramfs []string, ask interactive.Request) error {
	for _, f := range []struct {
		set  bool
		name string
	}{
		{cfg.Perf != nil, "--perf-mode"}, {ask.Shell, "--shell"}, {ask.HasExec, "--exec"},
		{c.IsSet("com2"), "--com2"},
		{c.IsSet("control-fifo") && c.String("control-fifo") != "none", "--control-fifo"},
	} {
		if f.set {
			return cmdutil.UsageError("%s needs ktstr-boot's own VMM (--vmm kvm on hardware KVM); the QEMU path (%s) does not offer it", f.name, choice)
		}
	}
	if cfg.Memory%(1<<20) != 0 {
		return cmdutil.UsageError("--memory: QEMU takes whole MiB")
	}
	res, err := qemuvmm.Boot(context.Background(), qemuvmm.BootConfig{
		Kernel: cfg.KernelPath, Initramfs: initramfs, Topology: cfg.Topology, Memory: cfg.Memory,
		Cmdline: cfg.Cmdline, NoBaseCmdline: c.Bool("no-default-cmdline"), Timeout: cfg.Timeout, KVM: choice.KVM,
		Stream: cfg.Stream, Console: cfg.Console, Log: os.Stderr, Signals: cfg.Signals, Start: cfg.Start, CPUs: cfg.CPUs,
		HangWarn: cfg.HangWarn, ReportNoExit: cfg.ReportNoExit,
	})
	if err != nil {
		return cmdutil.Exit(vmm.ExitVMMError, err)
	}
	if c.Bool("summary") {
		fmt.Fprintf(os.Stderr, "ktstr-boot: summary vmm=qemu reason=%s exit=%d wall_s=%.3f first_frame_s=%.3f guest_frames=%d vcpus=%d\n",
			res.Reason, res.ExitCode, res.Wall.Seconds(), res.FirstFrame.Seconds(), res.GuestFrames, res.VCPUs)
	}
	if res.ExitCode == 0 {
		return nil
	}
	return cmdutil.Exitf(res.ExitCode, "%s", res.Summary())
}
