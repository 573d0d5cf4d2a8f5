// Command ktstr-lab is the lab's developer tool for scripts (test/e2e.sh,
// make demo): it boots kernels under QEMU the way the Go tests do. It is
// not a product binary and is not installed; run it with
//
//	go run ./test/lab/ktstr-lab reference --kernel bzImage --initramfs blob --stream FILE
//
// Exit status: 0 the guest ran and QEMU exited 0; 1 the run failed (QEMU
// error, non-zero exit); 2 usage; 3 the hard timeout killed QEMU.
//
//	go run ./test/lab/ktstr-lab kvm-probe
//
// prints whether /dev/kvm is hardware-assisted and why; exit 0 hardware,
// 10 emulated or missing (then use the nested lab).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/lab"
	"github.com/urfave/cli/v2"
)

func main() {
	cmdutil.Main(&cli.App{
		Name:     "ktstr-lab",
		Usage:    "boot kernels in the ktstr test lab (developer tool)",
		Commands: []*cli.Command{referenceCmd(), kvmProbeCmd()},
	})
}

func referenceCmd() *cli.Command {
	return &cli.Command{
		Name:  "reference",
		Usage: "boot a kernel and initramfs under plain QEMU TCG; console on stderr, stream to --stream or stdout",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kernel", EnvVars: []string{"KTSTR_KERNEL"}, Usage: "bzImage to boot"},
			&cli.StringFlag{Name: "initramfs", Required: true, Usage: "initramfs blob"},
			&cli.StringFlag{Name: "stream", Usage: "file for the guest's ktstr port bytes (default: stdout)"},
			&cli.StringFlag{Name: "console", Usage: "also write the serial console to this file"},
			&cli.BoolFlag{Name: "quiet-console", Usage: "do not copy the console to stderr"},
			&cli.IntFlag{Name: "cpus", Value: 2},
			&cli.IntFlag{Name: "memory", Value: 512, Usage: "guest RAM in MiB"},
			&cli.StringFlag{Name: "cmdline", Usage: "appended to \"" + lab.BaseCmdline + "\""},
			&cli.DurationFlag{Name: "timeout", Value: 120 * time.Second, Usage: "hard limit; QEMU is killed after it"},
			&cli.StringFlag{Name: "mem-file", Usage: "back guest RAM with this file (share=on)"},
			&cli.StringSliceFlag{Name: "qemu-arg", Usage: "extra QEMU argument (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if c.String("kernel") == "" {
				return cmdutil.UsageError("--kernel (or KTSTR_KERNEL) is required")
			}
			o := lab.ReferenceOptions{
				Kernel: c.String("kernel"), Initramfs: c.String("initramfs"),
				StreamPath: c.String("stream"), ConsolePath: c.String("console"),
				CPUs: c.Int("cpus"), MemoryMiB: c.Int("memory"), Cmdline: c.String("cmdline"),
				Timeout: c.Duration("timeout"), MemFile: c.String("mem-file"),
				ExtraArgs: c.StringSlice("qemu-arg"),
			}
			if o.StreamPath == "" {
				o.Stream = os.Stdout
			}
			if !c.Bool("quiet-console") {
				o.Console = os.Stderr
			}
			r, err := lab.Reference(c.Context, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "ktstr-lab: reference boot (QEMU TCG, no KVM): exit %d, %d stream bytes, wall %.2fs\n",
				r.ExitCode, len(r.Stream), r.Wall.Seconds())
			if r.TimedOut {
				return cmdutil.Exit(3, r.Err())
			}
			return r.Err()
		},
	}
}

func kvmProbeCmd() *cli.Command {
	return &cli.Command{
		Name:  "kvm-probe",
		Usage: "decide whether /dev/kvm is hardware-assisted (exit 0) or emulated/missing (exit 10)",
		Flags: []cli.Flag{&cli.StringFlag{Name: "device", Value: "/dev/kvm"}},
		Action: func(c *cli.Context) error {
			p := lab.ProbeKVM(c.String("device"))
			fmt.Printf("kvm: %s: %s\n", p.Kind, p.Reason)
			if p.Kind != lab.KVMHardware {
				return cmdutil.Exit(10, fmt.Errorf("no hardware KVM"))
			}
			return nil
		},
	}
}
