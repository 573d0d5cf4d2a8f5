package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/qemu"
)

// Share is a host directory made visible inside L1.
type Share struct {
	// Tag names the share (letters, digits, '-', '_').
	Tag string
	// HostPath is the host directory.
	HostPath string
	// GuestPath is where L1 sees it (default /mnt/<Tag>).
	GuestPath string
	// Pack copies the directory into the L1 initramfs instead of sharing
	// it over virtio-9p: a snapshot taken at StartNested.
	Pack bool
}

func (s Share) guestPath() string {
	if s.GuestPath != "" {
		return s.GuestPath
	}
	return "/mnt/" + s.Tag
}

// NestedOptions configures the L1 guest.
type NestedOptions struct {
	// Kernel is L1's kernel; it needs KVM_AMD (or KVM_INTEL), virtio-mmio,
	// virtio console and 9p built in (default $KTSTR_KERNEL).
	Kernel string
	// Agent is the static ktstr-lab-agent binary (see BuildAgent).
	Agent string
	// Machine is L1's QEMU machine type: "microvm" (default; virtio-mmio
	// devices) or "pc"/"q35" (virtio-pci devices, HPET and PM timer).
	Machine string
	// NoTSCHint leaves out TCGTimeCmdline's TSC options (experiments only:
	// without them a loaded host can stall L1's boot, see HostTSCkHz).
	NoTSCHint bool
	// CPUs is L1's vCPU count (default 1: a 2-vCPU L1 made L2 slower on
	// a 2-core host).
	CPUs int
	// MultiThreaded runs L1's CPUs on a host thread each (MTTCG). The
	// default for more than one CPU is QEMU's single-threaded round-robin
	// TCG (one CPU keeps QEMU's own default): under MTTCG L1
	// kernels died of an int3 oops in a just-patched static-branch NOP
	// (cross-modifying code racing another TCG thread; seen with a
	// 32-CPU L1 at its first 32-vCPU L2, and in ~1 in 10 2-vCPU
	// reference boots).
	MultiThreaded bool
	// MemoryMiB is L1's RAM (default 2048).
	MemoryMiB int
	// Shares are host directories visible in L1.
	Shares []Share
	// Initramfs, when set, is used as L1's initramfs instead of building
	// one (it must start the agent like BuildL1Initramfs's init does).
	Initramfs string
	// MkInitramfs is the ktstr-mkinitramfs binary that builds L1's
	// initramfs; empty uses the lab's own cpio writer (the fallback from
	// before ktstr-mkinitramfs existed). StartNested's callers normally
	// pass FindMkInitramfs().
	MkInitramfs string
	// Cmdline is appended to L1's command line.
	Cmdline string
	// BootTimeout bounds L1's boot to the agent's greeting (default 120 s).
	BootTimeout time.Duration
	// Lifetime is the hard limit on L1 as a whole; QEMU is killed after it
	// (default 30 min).
	Lifetime time.Duration
	// Console, when set, receives L1's serial console live.
	Console io.Writer
	// ExtraArgs are appended to L1's QEMU arguments.
	ExtraArgs []string
	// WorkDir holds L1's initramfs and sockets (default: a temporary
	// directory removed by Close).
	WorkDir string
}

// Nested is a running L1 guest with its agent.
type Nested struct {
	opts    NestedOptions
	proc    *qemu.Process
	client  *agentClient
	sink    net.Listener
	conn    net.Conn
	dir     string
	ownDir  bool
	closed  bool
	started time.Time
	// BootTime is the wall time from QEMU's start to the agent's greeting.
	BootTime time.Duration
	// GuestUptime is L1's uptime when the agent greeted.
	GuestUptime time.Duration
}

// L1QEMUFirmware lists the QEMU data files packed into L1 so that QEMU
// inside it finds its firmware (microvm's qboot, SeaBIOS, option ROMs).
var L1QEMUFirmware = []string{"bios-microvm.bin", "qboot.rom", "bios-256k.bin", "bios.bin",
	"linuxboot_dma.bin", "linuxboot.bin", "pvh.bin", "kvmvapic.bin", "multiboot_dma.bin"}

// l1Init is L1's /init: mount the basics and the shares, start the agent,
// power off when it ends.
const l1Init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs -o size=50% tmp /tmp; mkdir -p /dev/pts; mount -t devpts pts /dev/pts
ip link set lo up 2>/dev/null
for s in $(cat /etc/ktstr-lab/9p 2>/dev/null); do
  tag=${s%%=*}; dir=${s#*=}; mkdir -p "$dir"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose "$tag" "$dir" || echo "ktstr-lab: mount 9p $tag failed"
done
echo "ktstr-lab: L1 up at $(cut -d' ' -f1 /proc/uptime)s kvm=$(ls /dev/kvm 2>&1)"
/usr/lib/ktstr-lab/agent
echo "ktstr-lab: agent exited $?"
poweroff -f
`

// BuildL1Initramfs writes L1's initramfs (uncompressed newc: TCG unpacks
// it faster than it decompresses) to path: busybox, the host's
// qemu-system-x86_64 with its libraries and firmware, the agent, packed
// shares and the init that mounts the 9p ones.
func BuildL1Initramfs(path string, opts *NestedOptions) error {
	if opts.MkInitramfs != "" {
		return mkL1Initramfs(path, opts)
	}
	a, err := BusyboxArchive(l1Init)
	if err != nil {
		return err
	}
	q, err := FindQEMU()
	if err != nil {
		return err
	}
	if err := a.FileWithLibs("/usr/bin/qemu-system-x86_64", q); err != nil {
		return err
	}
	found := 0
	for _, f := range L1QEMUFirmware {
		src := filepath.Join("/usr/share/qemu", f)
		if _, err := os.Stat(src); err == nil {
			if err := a.File(filepath.Join("/usr/share/qemu", f), src); err != nil {
				return err
			}
			found++
		}
	}
	if found == 0 {
		return fmt.Errorf("no QEMU firmware in /usr/share/qemu: install qemu-system-x86 (and seabios, qemu-system-data)")
	}
	if err := a.File("/usr/lib/ktstr-lab/agent", opts.Agent); err != nil {
		return fmt.Errorf("nested lab agent: %w (build it with lab.BuildAgent)", err)
	}
	var nine []string
	for _, s := range opts.Shares {
		if s.Pack {
			if err := a.Tree(s.guestPath(), s.HostPath); err != nil {
				return fmt.Errorf("pack %s into L1: %w", s.HostPath, err)
			}
			continue
		}
		nine = append(nine, s.Tag+"="+s.guestPath())
	}
	a.Bytes("/etc/ktstr-lab/9p", 0o644, []byte(strings.Join(nine, "\n")+"\n"))
	return a.WriteFile(path)
}

// BuildAgent compiles the L1 agent (a static binary) into dir and returns
// its path. It runs the go tool from the ktstr module (the current
// directory must be inside it).
func BuildAgent(ctx context.Context, dir string) (string, error) {
	return BuildTool(ctx, dir, "test/lab/ktstr-lab-agent")
}

// BuildWorkdir prepares what an L1 needs under dir: the agent (built into
// dir) and dir/data, a directory to share with L1, holding the ktstr
// module's packages tools (e.g. "cmd/ktstr-boot") built as static
// binaries. It returns the agent's path and the data directory.
func BuildWorkdir(ctx context.Context, dir string, tools ...string) (agent, data string, err error) {
	if agent, err = BuildAgent(ctx, dir); err != nil {
		return "", "", err
	}
	data = filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", "", fmt.Errorf("nested lab data directory: %w", err)
	}
	for _, tool := range tools {
		if _, err := BuildTool(ctx, data, tool); err != nil {
			return "", "", err
		}
	}
	return agent, data, nil
}

// BuildTool compiles the ktstr module's package pkg (a path relative to
// the module root, e.g. "cmd/ktstr-boot") as a static binary into dir.
func BuildTool(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/ktstr-go/ktstr/"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v: %s", pkg, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// L1Args returns QEMU's arguments for L1.
func L1Args(opts *NestedOptions, initramfs, sock, hmp string) []string {
	cpus, mem := opts.CPUs, opts.MemoryMiB
	if cpus <= 0 {
		cpus = 1
	}
	if mem <= 0 {
		mem = 2048
	}
	machine, bus := or(opts.Machine, "microvm"), "device"
	if machine != "microvm" {
		bus = "pci"
	}
	// One CPU: QEMU's default, as every suite run so far. More:
	// round-robin unless asked (see MultiThreaded).
	accel := "tcg"
	switch {
	case opts.MultiThreaded:
		accel = "tcg,thread=multi"
	case cpus > 1:
		accel = "tcg,thread=single"
	}
	args := []string{
		"-M", machine, "-accel", accel, "-cpu", "max",
		"-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-reboot", "-display", "none",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-device", "virtio-serial-" + bus,
		"-chardev", "socket,id=agent,path=" + sock,
		"-device", "virtserialport,chardev=agent,name=" + AgentPort,
	}
	if hmp != "" {
		args = append(args, "-chardev", "socket,id=hmp,path="+hmp+",server=on,wait=off", "-mon", "chardev=hmp,mode=readline")
	}
	for i, s := range opts.Shares {
		if s.Pack {
			continue
		}
		args = append(args,
			"-fsdev", fmt.Sprintf("local,id=fs%d,path=%s,security_model=none", i, s.HostPath),
			"-device", fmt.Sprintf("virtio-9p-%s,fsdev=fs%d,mount_tag=%s", bus, i, s.Tag))
	}
	cmdline := BaseCmdline + " quiet loglevel=4 nokaslr"
	if t := TCGTimeCmdline(); t != "" && !opts.NoTSCHint {
		cmdline += " " + t
	}
	if opts.Cmdline != "" {
		cmdline += " " + opts.Cmdline
	}
	args = append(args, "-kernel", opts.Kernel, "-initrd", initramfs, "-append", cmdline)
	return append(args, opts.ExtraArgs...)
}

// StartNested boots L1 and waits for its agent. A boot that does not
// greet within BootTimeout is killed and reported as an error with the
// console's tail; the caller decides whether to retry (see
// docs/nested-lab.md for the policy the tests use).
func StartNested(ctx context.Context, opts NestedOptions) (*Nested, error) {
	if opts.Kernel == "" {
		opts.Kernel = os.Getenv("KTSTR_KERNEL")
	}
	if opts.Kernel == "" {
		return nil, fmt.Errorf("nested lab: no L1 kernel: set KTSTR_KERNEL to a bzImage with KVM_AMD, virtio-mmio and 9p")
	}
	if opts.Agent == "" && opts.Initramfs == "" {
		return nil, fmt.Errorf("nested lab: no agent binary (use lab.BuildAgent)")
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 120 * time.Second
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = 30 * time.Minute
	}
	q, err := FindQEMU()
	if err != nil {
		return nil, err
	}
	n := &Nested{opts: opts, dir: opts.WorkDir}
	if n.dir == "" {
		if n.dir, err = os.MkdirTemp("", "ktstr-l1-"); err != nil {
			return nil, fmt.Errorf("nested lab: %w", err)
		}
		n.ownDir = true
	}
	fail := func(err error) (*Nested, error) {
		n.Close()
		return nil, err
	}
	initramfs := opts.Initramfs
	if initramfs == "" {
		initramfs = filepath.Join(n.dir, "l1.cpio")
		if err := BuildL1Initramfs(initramfs, &opts); err != nil {
			return fail(fmt.Errorf("nested lab: L1 initramfs: %w", err))
		}
	}
	sock := filepath.Join(n.dir, "agent.sock")
	if n.sink, err = net.Listen("unix", sock); err != nil {
		return fail(fmt.Errorf("nested lab: %w", err))
	}
	n.proc = &qemu.Process{QEMU: q, Args: L1Args(&opts, initramfs, sock, filepath.Join(n.dir, "hmp.sock")), Timeout: opts.Lifetime, Console: opts.Console}
	if err := n.proc.Start(context.WithoutCancel(ctx)); err != nil {
		return fail(fmt.Errorf("nested lab: %w", err))
	}
	n.started = n.proc.Started()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := n.sink.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	bctx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	select {
	case n.conn = <-accepted:
	case <-n.proc.Done():
		return fail(n.bootFailure(fmt.Errorf("nested lab: L1's QEMU exited before connecting: %s", tail(n.proc.StderrBytes(), 300))))
	case <-bctx.Done():
		return fail(n.bootFailure(fmt.Errorf("nested lab: L1's QEMU did not connect within %v", opts.BootTimeout)))
	}
	n.client = newAgentClient(n.conn)
	hello, err := n.client.waitHello(bctx)
	if err != nil {
		return fail(n.bootFailure(fmt.Errorf("nested lab: L1 did not boot to its agent within %v (%v)", opts.BootTimeout, err)))
	}
	n.BootTime = time.Since(n.started)
	n.GuestUptime = time.Duration(hello.UptimeMS) * time.Millisecond
	return n, nil
}

// Run runs cmd with /bin/sh -c inside L1, killing it after timeout, and
// returns its output and exit status. The error is non-nil only when the
// lab itself failed (ErrAgentLost: L1 hung or died; ctx ended); a command
// that fails or times out is reported in RunResult.
func (n *Nested) Run(ctx context.Context, cmd string, timeout time.Duration) (*RunResult, error) {
	return n.RunLive(ctx, cmd, timeout, nil)
}

// RunLive is Run with the command's output also copied to live as it
// arrives (stdout and stderr interleaved).
func (n *Nested) RunLive(ctx context.Context, cmd string, timeout time.Duration, live io.Writer) (*RunResult, error) {
	if n.closed || n.client == nil {
		return nil, fmt.Errorf("nested lab: Run on a closed lab")
	}
	r, err := n.client.run(ctx, cmd, timeout, live)
	if err != nil {
		if ctx.Err() != nil { // the caller ended it: not the lab's failure
			return nil, fmt.Errorf("%w; L1 console tail: %s", err, tail(n.proc.ConsoleBytes(), 400))
		}
		return nil, fmt.Errorf("%w; %s", err, n.KeepEvidence("nested-l1-lost", fmt.Sprintf("L1 failed while running %q: %v", cmd, err)))
	}
	return r, nil
}

// Console returns L1's serial console so far.
func (n *Nested) Console() []byte { return n.proc.ConsoleBytes() }

// Close powers L1 off (killing QEMU if it does not exit within 10 s) and
// removes its work directory.
func (n *Nested) Close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	if n.conn != nil {
		n.conn.Close() // the agent sees EOF and powers L1 off
	}
	if n.proc != nil && n.proc.Done() != nil {
		select {
		case <-n.proc.Done():
		case <-time.After(10 * time.Second):
			n.proc.Stop()
		}
		n.proc.Wait()
	}
	if n.sink != nil {
		n.sink.Close()
	}
	if n.ownDir {
		os.RemoveAll(n.dir)
	}
	return nil
}

// ShellQuote quotes args for /bin/sh.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=,./:+@%") == "" {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// FileWithLibs adds host file src at p and, when it is a dynamically
// linked executable, the shared libraries ldd names at their host paths.
func (a *Archive) FileWithLibs(p, src string) error {
	if err := a.File(p, src); err != nil {
		return err
	}
	out, err := exec.Command("ldd", src).CombinedOutput()
	if err != nil {
		return nil // static or not an ELF executable: nothing to add
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			if err := a.File(f, f); err != nil {
				return err
			}
		}
	}
	if !a.Has("/lib64/ld-linux-x86-64.so.2") && a.Has("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2") {
		a.Symlink("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	}
	return nil
}

// Monitor sends one human-monitor command to L1's QEMU (for example
// "info registers" to see where a hung L1 is executing) and returns its
// answer. It works even when L1's agent no longer answers.
func (n *Nested) Monitor(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", filepath.Join(n.dir, "hmp.sock"), 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("L1 monitor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	readPrompt := func() (string, error) {
		var b []byte
		buf := make([]byte, 4096)
		for !bytes.HasSuffix(b, []byte("(qemu) ")) {
			k, err := c.Read(buf)
			if err != nil {
				return string(b), fmt.Errorf("L1 monitor: %w", err)
			}
			b = append(b, buf[:k]...)
		}
		return string(b), nil
	}
	if _, err := readPrompt(); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("L1 monitor: %w", err)
	}
	out, err := readPrompt()
	// Drop the echoed command line (with its terminal escapes) and the
	// trailing prompt.
	out = strings.TrimSuffix(out, "(qemu) ")
	if i := strings.Index(out, "\n"); i >= 0 {
		out = out[i+1:]
	}
	return strings.ReplaceAll(out, "\r", ""), err
}

// FindMkInitramfs returns $KTSTR_BIN/ktstr-mkinitramfs, else the one on
// $PATH, else "".
func FindMkInitramfs() string {
	if b := os.Getenv("KTSTR_BIN"); b != "" {
		p := filepath.Join(b, "ktstr-mkinitramfs")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("ktstr-mkinitramfs")
	return p
}

// mkL1Initramfs builds L1's initramfs with ktstr-mkinitramfs: the same
// content as the fallback writer, with the libraries resolved by the
// project's own ELF dependency walk.
func mkL1Initramfs(path string, opts *NestedOptions) error {
	tmp, err := os.MkdirTemp("", "ktstr-l1-inputs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	initPath := filepath.Join(tmp, "init")
	if err := os.WriteFile(initPath, []byte(l1Init), 0o755); err != nil {
		return err
	}
	bb, err := FindBusybox()
	if err != nil {
		return err
	}
	q, err := FindQEMU()
	if err != nil {
		return err
	}
	args := []string{"--compress", "none", "--no-cache", "-o", path, "--init", initPath, "--busybox", bb,
		"--include", q + ":/usr/bin/qemu-system-x86_64",
		"--include", opts.Agent + ":/usr/lib/ktstr-lab/agent"}
	found := 0
	for _, f := range L1QEMUFirmware {
		src := filepath.Join("/usr/share/qemu", f)
		if real, err := filepath.EvalSymlinks(src); err == nil {
			args = append(args, "--include", real+":"+src)
			found++
		}
	}
	if found == 0 {
		return fmt.Errorf("no QEMU firmware in /usr/share/qemu: install qemu-system-x86 (and seabios, qemu-system-data)")
	}
	var nine []string
	for _, s := range opts.Shares {
		if s.Pack {
			args = append(args, "--include", s.HostPath+":"+s.guestPath())
			continue
		}
		nine = append(nine, s.Tag+"="+s.guestPath())
	}
	ninePath := filepath.Join(tmp, "9p")
	if err := os.WriteFile(ninePath, []byte(strings.Join(nine, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	args = append(args, "--include", ninePath+":/etc/ktstr-lab/9p")
	out, err := exec.Command(opts.MkInitramfs, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", opts.MkInitramfs, err, bytes.TrimSpace(out))
	}
	return nil
}
