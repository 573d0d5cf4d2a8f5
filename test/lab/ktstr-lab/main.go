// Command ktstr-lab is the lab's developer tool for scripts (test/e2e.sh,
// make demo): it boots kernels under QEMU the way the Go tests do. It is
// not a product binary and is not installed; run it with
//
//	go run ./test/lab/ktstr-lab reference --kernel bzImage --initramfs blob --stream FILE
//
// Exit status: 0 the guest ran and QEMU exited 0; 1 the run failed (QEMU
// error, non-zero exit, frames but no guest_exit); 2 usage; 3 the hard
// timeout killed QEMU. A failed run's console, stream and QEMU stderr are
// kept under $KTSTR_EVIDENCE_DIR (default /var/tmp/ktstr-evidence) and the
// error names the directory.
//
//	go run ./test/lab/ktstr-lab keep-evidence --name NAME --why TEXT --file console.txt=PATH ...
//
// keeps a script's own failed run the same way (internal/lab/evidence.go).
//
//	go run ./test/lab/ktstr-lab kvm-probe
//
// prints whether /dev/kvm is hardware-assisted and why; exit 0 hardware,
// 10 emulated or missing (then use the nested lab).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/internal/lab"
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/urfave/cli/v2"
)

func main() {
	cmdutil.Main(&cli.App{
		Name:     "ktstr-lab",
		Usage:    "boot kernels in the ktstr test lab (developer tool)",
		Commands: []*cli.Command{referenceCmd(), kvmProbeCmd(), nestedCmd(), initramfsCmd(), keepEvidenceCmd()},
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
			&cli.StringFlag{Name: "accel", Value: lab.DefaultAccel, Usage: "QEMU accelerator (kvm inside the nested lab's L1)"},
			&cli.StringFlag{Name: "name", Value: "reference", Usage: "label of the evidence directory a failed run leaves"},
			&cli.DurationFlag{Name: "hang-warn", Value: 10 * time.Second, Usage: "warn on stderr when no stream byte arrived for this long (0: never)"},
			&cli.StringFlag{Name: "cpu-model", Value: "max"},
			&cli.StringFlag{Name: "machine-opts", Usage: "appended to -M microvm, (e.g. rtc=off)"},
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
				Accel:     c.String("accel"), CPUModel: c.String("cpu-model"), MachineOpts: c.String("machine-opts"),
				Name: c.String("name"), Log: os.Stderr, HangWarn: c.Duration("hang-warn"),
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
			fmt.Fprintf(os.Stderr, "ktstr-lab: QEMU -accel %s boot: exit %d, %d stream bytes, first stream byte at %.2fs, wall %.2fs\n",
				o.Accel, r.ExitCode, len(r.Stream), r.FirstStream.Seconds(), r.Wall.Seconds())
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

func nestedCmd() *cli.Command {
	return &cli.Command{
		Name:  "nested",
		Usage: "boot L1 under QEMU TCG (nested SVM), run each --run command inside it in turn, print their output",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kernel", EnvVars: []string{"KTSTR_KERNEL"}, Usage: "L1 kernel (KVM_AMD, virtio-mmio, 9p built in)"},
			&cli.StringSliceFlag{Name: "share", Usage: "TAG=HOSTDIR[:GUESTDIR] shared over 9p (default guest dir /mnt/TAG; repeatable)"},
			&cli.StringSliceFlag{Name: "pack", Usage: "TAG=HOSTDIR[:GUESTDIR] copied into the L1 initramfs instead"},
			&cli.StringSliceFlag{Name: "run", Usage: "shell command to run in L1 (repeatable, in order)"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "hard limit per command"},
			&cli.IntFlag{Name: "cpus", Value: 1},
			&cli.IntFlag{Name: "memory", Value: 2048},
			&cli.StringFlag{Name: "cmdline", Usage: "appended to L1's command line"},
			&cli.BoolFlag{Name: "console", Usage: "copy L1's console to stderr"},
			&cli.StringFlag{Name: "machine", Value: "microvm", Usage: "L1 machine type: microvm, pc or q35"},
			&cli.StringSliceFlag{Name: "monitor", Usage: "L1 QEMU monitor command to run after the --run commands (repeatable)"},
			&cli.BoolFlag{Name: "no-tsc-hint", Usage: "let L1 calibrate its TSC itself (experiments)"},
		},
		Action: func(c *cli.Context) error {
			dir, err := os.MkdirTemp("", "ktstr-lab-cli-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			agent, err := lab.BuildAgent(c.Context, dir)
			if err != nil {
				return err
			}
			o := lab.NestedOptions{Kernel: c.String("kernel"), Agent: agent, CPUs: c.Int("cpus"),
				MemoryMiB: c.Int("memory"), Cmdline: c.String("cmdline"), WorkDir: dir,
				Machine: c.String("machine"), NoTSCHint: c.Bool("no-tsc-hint"), MkInitramfs: lab.FindMkInitramfs()}
			for _, pack := range []bool{false, true} {
				name := map[bool]string{false: "share", true: "pack"}[pack]
				for _, s := range c.StringSlice(name) {
					tag, rest, ok := strings.Cut(s, "=")
					if !ok {
						return cmdutil.UsageError("--%s %q: want TAG=HOSTDIR[:GUESTDIR]", name, s)
					}
					host, guest, _ := strings.Cut(rest, ":")
					if host, err = filepath.Abs(host); err != nil {
						return err
					}
					o.Shares = append(o.Shares, lab.Share{Tag: tag, HostPath: host, GuestPath: guest, Pack: pack})
				}
			}
			if c.Bool("console") {
				o.Console = os.Stderr
			}
			n, err := lab.StartNested(c.Context, o)
			if err != nil {
				return err
			}
			defer n.Close()
			fmt.Fprintf(os.Stderr, "ktstr-lab: L1 up in %.2fs (guest uptime %.2fs)\n", n.BootTime.Seconds(), n.GuestUptime.Seconds())
			failed := 0
			for _, cmd := range c.StringSlice("run") {
				fmt.Fprintf(os.Stderr, "ktstr-lab: L1$ %s\n", cmd)
				r, err := n.RunLive(c.Context, cmd, c.Duration("timeout"), os.Stdout)
				if err != nil {
					// L1 hung: show where its vCPU is, three samples.
					for i := 0; i < 3; i++ {
						regs, merr := n.Monitor("info registers")
						fmt.Fprintf(os.Stderr, "ktstr-lab: L1 registers (sample %d): %v\n%s\n", i+1, merr, regs)
						time.Sleep(time.Second)
					}
					for _, m := range []string{"info lapic", "info pic", "info irq"} {
						out, merr := n.Monitor(m)
						fmt.Fprintf(os.Stderr, "ktstr-lab: L1 (qemu) %s: %v\n%s\n", m, merr, out)
					}
					return err
				}
				fmt.Fprintf(os.Stderr, "ktstr-lab: exit %d after %.2fs%s\n", r.ExitCode, r.Wall.Seconds(), map[bool]string{true: " (TIMED OUT)"}[r.TimedOut])
				if r.ExitCode != 0 {
					failed++
				}
			}
			for _, m := range c.StringSlice("monitor") {
				out, err := n.Monitor(m)
				fmt.Fprintf(os.Stderr, "ktstr-lab: (qemu) %s: %v\n%s", m, err, out)
			}
			if failed > 0 {
				return fmt.Errorf("%d command(s) in L1 failed", failed)
			}
			return nil
		},
	}
}

func initramfsCmd() *cli.Command {
	return &cli.Command{
		Name:  "busybox-initramfs",
		Usage: "write a busybox initramfs with --init as /init and extra files (dynamic ELF files get their libraries)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "init", Required: true, Usage: "shell script for /init"},
			&cli.StringFlag{Name: "out", Required: true},
			&cli.StringSliceFlag{Name: "file", Usage: "HOSTFILE=GUESTPATH (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			init, err := os.ReadFile(c.String("init"))
			if err != nil {
				return err
			}
			a, err := lab.BusyboxArchive(string(init))
			if err != nil {
				return err
			}
			for _, f := range c.StringSlice("file") {
				src, dst, ok := strings.Cut(f, "=")
				if !ok {
					return cmdutil.UsageError("--file %q: want HOSTFILE=GUESTPATH", f)
				}
				if err := a.FileWithLibs(dst, src); err != nil {
					return err
				}
			}
			return a.WriteFile(c.String("out"))
		},
	}
}

func keepEvidenceCmd() *cli.Command {
	return &cli.Command{
		Name:  "keep-evidence",
		Usage: "keep a failed run's files under the evidence root and print where, with the console's last lines",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Required: true, Usage: "label of the evidence directory"},
			&cli.StringFlag{Name: "why", Required: true, Usage: "what failed"},
			&cli.StringSliceFlag{Name: "file", Usage: "NAME=PATH to keep (repeatable); the one named console.txt is tailed in the message"},
		},
		Action: func(c *cli.Context) error {
			var files []lab.EvidenceFile
			var console []byte
			for _, f := range c.StringSlice("file") {
				name, path, ok := strings.Cut(f, "=")
				if !ok || name == "" || path == "" {
					return cmdutil.UsageError("--file %q: want NAME=PATH", f)
				}
				files = append(files, lab.EvidenceFile{Name: name, Path: path})
				if name == "console.txt" {
					console = lab.ReadTail(path, 64<<10)
				}
			}
			dir, err := lab.KeepEvidence(c.String("name"), c.String("why"), files...)
			fmt.Fprintf(os.Stderr, "ktstr-lab: %s\n", lab.EvidenceMessage(dir, err, console))
			return err
		},
	}
}
