package vmm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Linux boot tests. They need a /dev/kvm that runs Linux: hardware KVM or
// the nested lab's L1. This project's development machines have an
// emulated /dev/kvm that cannot, so the tests run only when
// KTSTR_REAL_KVM=1 says the host can, and skip loudly otherwise.

func needLinux(t *testing.T) (kernel []byte, initrd []byte) {
	t.Helper()
	if os.Getenv("KTSTR_REAL_KVM") != "1" {
		t.Skip("SKIP: Linux boot needs hardware or nested KVM; set KTSTR_REAL_KVM=1 where /dev/kvm is real (the nested lab does)")
	}
	kp := testenv.Kernel(t)
	k, err := os.ReadFile(kp)
	if err != nil {
		t.Fatalf("read KTSTR_KERNEL: %v", err)
	}
	initPath := os.Getenv("KTSTR_LAB_INIT")
	if initPath == "" {
		initPath = filepath.Join(t.TempDir(), "init")
		cmd := exec.Command("go", "build", "-o", initPath, "./testdata/labinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the lab init: %v\n%s", err, out)
		}
	}
	ib, err := os.ReadFile(initPath)
	if err != nil {
		t.Fatalf("read lab init: %v", err)
	}
	var c cpioWriter
	c.dir("dev")
	c.dir("proc")
	c.dir("sys")
	c.file("init", 0o755, ib)
	return k, c.finish()
}

// cpioWriter writes a newc archive (enough for a test initramfs).
type cpioWriter struct {
	b   bytes.Buffer
	ino int
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	c.ino++
	fmt.Fprintf(&c.b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.b.WriteString(name)
	c.b.WriteByte(0)
	for c.b.Len()%4 != 0 {
		c.b.WriteByte(0)
	}
	c.b.Write(data)
	for c.b.Len()%4 != 0 {
		c.b.WriteByte(0)
	}
}
func (c *cpioWriter) dir(name string)                         { c.entry(name, 0o040755, nil) }
func (c *cpioWriter) file(name string, perm uint32, b []byte) { c.entry(name, 0o100000|perm, b) }
func (c *cpioWriter) finish() []byte {
	c.entry("TRAILER!!!", 0, nil)
	return c.b.Bytes()
}

type linuxRun struct {
	res     Result
	out     []byte
	console string
}

func bootLinux(t *testing.T, args string, timeout time.Duration, cpus int) linuxRun {
	t.Helper()
	k, initrd := needLinux(t)
	var out, con bytes.Buffer
	var console io.Writer = &con
	if os.Getenv("KTSTR_CONSOLE_TEE") == "1" {
		console = io.MultiWriter(&con, os.Stderr)
	}
	if a := os.Getenv("KTSTR_LAB_L2_ARGS"); a != "" {
		args += " " + a
	}
	if l := os.Getenv("KTSTR_LAB_LOGLEVEL"); l != "" {
		args += " loglevel=" + l
	}
	// ktstr-boot's path: both files read straight into guest RAM.
	dir := t.TempDir()
	kp, ip := filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs")
	if err := os.WriteFile(kp, k, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ip, initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	const mem = 512 << 20
	kf, err := OpenKernel(kp, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	ir, err := OpenInitramfs([]string{ip}, kf, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer ir.Close()
	start := time.Now()
	res, err := Run(Config{
		KernelFile: kf, Initramfs: ir, VCPUs: cpus, Memory: mem, Timeout: timeout,
		Cmdline: DefaultCmdline() + " " + args, Stream: &out, Console: console,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("%s: %s in %s, %d guest frames; console tail:\n%s", args, res.Reason, time.Since(start).Round(time.Millisecond), res.GuestFrames, tail(con.String(), 1500))
	return linuxRun{res, out.Bytes(), con.String()}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestLinuxBootStream(t *testing.T) {
	const frames = 100000
	r := bootLinux(t, fmt.Sprintf("ktstr_lab.mode=frames ktstr_lab.frames=%d ktstr_lab.code=3", frames), 5*time.Minute, 1)
	if r.res.Reason != ReasonGuestExit || r.res.ExitCode != 3 {
		t.Fatalf("result %+v, want guest_exit with code 3", r.res)
	}
	if !strings.Contains(r.console, "labinit: started") {
		t.Error("console lacks the init's greeting")
	}
	fs := decodeAll(t, r.out)
	if len(fs) != frames+4 {
		t.Fatalf("%d frames on stdout, want %d", len(fs), frames+4)
	}
	if fs[0].Type != wire.TypeVMStart || fs[1].Type != wire.TypeGuestReady ||
		fs[len(fs)-2].Type != wire.TypeGuestExit || fs[len(fs)-1].Type != wire.TypeVMExit {
		t.Fatalf("frame order: first %s %s, last %s %s", fs[0].Type, fs[1].Type, fs[len(fs)-2].Type, fs[len(fs)-1].Type)
	}
	vs, err := wire.Unmarshal(fs[0].Type, fs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	setup := vs.(wire.VMStart)
	var sum uint64
	names := []string{}
	var last string
	for _, p := range setup.SetupPhases {
		names = append(names, p.Name)
		if !p.Concurrent {
			sum += p.NS
			last = p.Name
		}
	}
	if setup.SetupNS == 0 || sum != setup.SetupNS || !slices.Contains(names, PhaseLoadInitramfs) || last != PhaseStart {
		t.Errorf("vm_start set-up: %d ns, phases %+v", setup.SetupNS, setup.SetupPhases)
	}
	t.Logf("set-up %v: %+v", time.Duration(setup.SetupNS), setup.SetupPhases)
	for i := 0; i < frames; i++ {
		f := fs[2+i]
		if f.Type != wire.TypeLog || string(f.Payload) != fmt.Sprintf("frame %d", i) || f.Seq != uint32(i+1) {
			t.Fatalf("frame %d: %s seq %d %q", i, f.Type, f.Seq, f.Payload)
		}
	}
}

func TestLinuxPanic(t *testing.T) {
	r := bootLinux(t, "ktstr_lab.mode=panic", 3*time.Minute, 1)
	if r.res.Reason != ReasonPanic || r.res.ExitCode != ExitPanic {
		t.Fatalf("result %+v, want panic/%d", r.res, ExitPanic)
	}
}

func TestLinuxPoweroff(t *testing.T) {
	r := bootLinux(t, "ktstr_lab.mode=poweroff", 3*time.Minute, 1)
	if r.res.Reason != ReasonPoweroff || r.res.ExitCode != ExitShutdown {
		t.Fatalf("result %+v, want poweroff/%d", r.res, ExitShutdown)
	}
}

func TestLinuxTimeout(t *testing.T) {
	r := bootLinux(t, "ktstr_lab.mode=hang", 2*time.Second, 1)
	if r.res.Reason != ReasonTimeout || r.res.ExitCode != ExitTimeout {
		t.Fatalf("result %+v, want timeout/%d", r.res, ExitTimeout)
	}
}

func TestLinuxSMP(t *testing.T) {
	r := bootLinux(t, "ktstr_lab.mode=frames ktstr_lab.frames=10", 5*time.Minute, 2)
	if r.res.Reason != ReasonGuestExit || r.res.ExitCode != 0 {
		t.Fatalf("result %+v, want guest_exit 0", r.res)
	}
	if !strings.Contains(r.console, "cpus online 0-1") {
		t.Fatalf("the guest did not bring up both vCPUs; console tail:\n%s", tail(r.console, 1500))
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and a polling reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, b *lockedBuffer, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if strings.Contains(b.String(), s) {
			return
		}
	}
	t.Fatalf("console never showed %q; tail:\n%s", s, tail(b.String(), 1500))
}

// TestLinuxSysRq injects SysRq through the control FIFO (serial break +
// key on the console UART) and stops the guest through it.
func TestLinuxSysRq(t *testing.T) {
	k, initrd := needLinux(t)
	fifo := filepath.Join(t.TempDir(), "ctl")
	var con lockedBuffer
	var out bytes.Buffer
	done := make(chan Result, 1)
	go func() {
		res, err := Run(Config{Kernel: k, Initrd: initrd, VCPUs: 1, Memory: 512 << 20, Timeout: 4 * time.Minute,
			Cmdline: DefaultCmdline() + " ktstr_lab.mode=sysrq", Stream: &out, Console: &con, ControlFIFO: fifo})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- res
	}()
	waitFor(t, &con, "labinit: started", 3*time.Minute)
	ctl, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	fmt.Fprintln(ctl, "sysrq t")
	waitFor(t, &con, "sysrq: Show State", 30*time.Second)
	fmt.Fprintln(ctl, "stop")
	res := <-done
	if res.Reason != ReasonStopped || res.ExitCode != 128+15 {
		t.Fatalf("result %+v, want stopped/143", res)
	}
	if _, err := os.Stat(fifo); !os.IsNotExist(err) {
		t.Errorf("control FIFO left behind: %v", err)
	}
}
