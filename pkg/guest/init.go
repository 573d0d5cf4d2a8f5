package guest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

// DefaultPort is the virtio port name the init writes frames to.
const DefaultPort = "ktstr"

// DefaultScenario runs when neither the run configuration nor the command
// line names one.
const DefaultScenario = "steady"

// DefaultAttachTimeout bounds the wait for the scheduler to attach.
const DefaultAttachTimeout = 20 * time.Second

// portWait bounds the wait for the virtio port to appear in sysfs.
const portWait = 10 * time.Second

// env is the init's I/O: the frame encoder (nil until the port is open)
// and the console. Frames and console lines may come from several
// goroutines.
type env struct {
	mu      sync.Mutex
	enc     *wire.Encoder
	pending []string
	console *os.File
}

func (e *env) logf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(e.console, "ktstr-init: %s\n", msg)
	e.mu.Lock()
	enc := e.enc
	if enc == nil {
		e.pending = append(e.pending, msg)
	}
	e.mu.Unlock()
	if enc != nil {
		_ = enc.Encode(wire.Log{Text: msg})
	}
}

func (e *env) send(m wire.Message) {
	e.mu.Lock()
	enc := e.enc
	e.mu.Unlock()
	if enc == nil {
		return
	}
	if err := enc.Encode(m); err != nil {
		fmt.Fprintf(e.console, "ktstr-init: %v\n", err)
	}
}

func (e *env) phase(p, detail string) {
	fmt.Fprintf(e.console, "ktstr-init: phase %s %s\n", p, detail)
	e.send(wire.Phase{Phase: p, Detail: detail})
}

type mountSpec struct {
	src, dir, fstype string
	required         bool
}

var mounts = []mountSpec{
	{"proc", "/proc", "proc", true},
	{"sysfs", "/sys", "sysfs", true},
	{"devtmpfs", "/dev", "devtmpfs", true},
	{"tmpfs", "/tmp", "tmpfs", true},
	{"tmpfs", "/run", "tmpfs", false},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", true},
	{"debugfs", "/sys/kernel/debug", "debugfs", false},
	{"tracefs", "/sys/kernel/tracing", "tracefs", false},
	{"bpf", "/sys/fs/bpf", "bpf", false},
}

func doMounts(e *env) error {
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil && m.required {
			return fmt.Errorf("mkdir %s: %w", m.dir, err)
		}
		err := unix.Mount(m.src, m.dir, m.fstype, 0, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			if m.required {
				return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
			}
			e.logf("mount %s on %s: %v (continuing)", m.fstype, m.dir, err)
		}
	}
	return nil
}

// ensureConsole gives the init stdin/stdout/stderr on /dev/console when the
// kernel could not open it (an initramfs without /dev/console).
func ensureConsole() {
	if _, err := unix.FcntlInt(2, unix.F_GETFD, 0); err == nil {
		return
	}
	if _, err := os.Stat("/dev/console"); err != nil {
		_ = unix.Mknod("/dev/console", unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1)))
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

func openPort(e *env, name string) (*os.File, string, error) {
	deadline := time.Now().Add(portWait)
	var dev, mm string
	var err error
	for {
		dev, mm, err = FindPort("/sys", name)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, "", err
	}
	path := "/dev/" + dev
	if _, serr := os.Stat(path); serr != nil {
		maj, min, ok := strings.Cut(mm, ":")
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, "", fmt.Errorf("port %s: bad dev numbers %q in sysfs", dev, mm)
		}
		if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(uint32(a), uint32(b)))); err != nil {
			return nil, "", fmt.Errorf("create %s: %w", path, err)
		}
		e.logf("created %s (%s): devtmpfs had no node for it", path, mm)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open port %s: %w", path, err)
	}
	return f, path, nil
}

func bootNS() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return uint64(ts.Nano())
}

func memKiB() uint64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			v, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

func unameRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return string(bytes.TrimRight(u.Release[:], "\x00"))
}

// ExitInitCrashed is the guest_exit code of an init that crashed: a Go
// panic or a fatal runtime error in PID 1 (documented in
// man/ktstr-init.1). It comes from the main goroutine's recover, or from
// the last-gasp watcher when the Go runtime itself is dying.
const ExitInitCrashed = 8

// RunInit is PID 1's main. It never returns: it powers the guest off.
//
// PID 1 must not die: the kernel panics ("Attempted to kill init!") and,
// with panic=-1, reboots, so the run would end with no guest_exit frame
// and nothing saying why. Three things stand between a fault in the init
// and that silent end:
//   - a panic in the main goroutine is recovered here, reported on the
//     console ("ktstr-init: FATAL: ..."), as a log frame with its stack and
//     as guest_exit ExitInitCrashed, and the guest powers off normally;
//   - a panic in any other goroutine, and a fatal runtime error (out of
//     memory, concurrent map writes, a deadlock), cannot be recovered:
//     the runtime prints it (all goroutines: SetTraceback) and exits. The
//     runtime also copies that report to a pipe (debug.SetCrashOutput)
//     read by the last-gasp watcher, a child started once the port is
//     open (startLastGasp), which writes the first lines to the console
//     and as a log frame, then guest_exit ExitInitCrashed, while the
//     runtime is still printing; the kernel's panic follows;
//   - a failing power-off is said on the console and as a log frame
//     (finish).
func RunInit(version string) {
	// Spare Ps: a thread that the Go runtime starts while a scheduler is
	// under test has the normal policy until the task-stall scan puts it
	// at SCHED_FIFO (taskstall.go), and the scheduler can stall it while
	// it holds a P; the init's other threads must still find an idle P.
	// Idle Ps cost nothing.
	runtime.GOMAXPROCS(max(8, 2*runtime.NumCPU()))
	ensureConsole()
	debug.SetTraceback("all")
	e := &env{console: os.Stderr}
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprintf("FATAL: PID 1 panicked: %v", r)
			fmt.Fprintf(e.console, "ktstr-init: %s\n%s", msg, debug.Stack())
			e.logf("%s; stack: %s", msg, firstBytes(debug.Stack(), 1500))
			finish(e, ExitInitCrashed)
		}
	}()
	code := runInit(e, version)
	finish(e, code)
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// TestCrashKey, on the kernel command line, makes the init crash on
// purpose right after init_started, to test the dying-PID-1 path in a
// real guest: "main" panics in the main goroutine (recovered), "goroutine"
// panics in another goroutine and "fatal" overflows a stack (both fatal
// to the Go runtime: the last-gasp watcher reports them).
const TestCrashKey = "ktstr.test_crash"

// testCrash crashes as TestCrashKey asks, and returns unknown without the
// key (ParseOverrides does not know it: it is a test hook, not a setting).
func testCrash(e *env, unknown []string) []string {
	var rest []string
	for _, k := range unknown {
		if k != TestCrashKey {
			rest = append(rest, k)
		}
	}
	if len(rest) == len(unknown) {
		return unknown
	}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, w := range SplitCmdline(string(b)) {
		v, ok := strings.CutPrefix(w, TestCrashKey+"=")
		if !ok {
			continue
		}
		e.logf("%s=%s: crashing on purpose", TestCrashKey, v)
		switch v {
		case "main":
			panic("test crash in the main goroutine (" + TestCrashKey + ")")
		case "goroutine":
			go func() { panic("test crash in a goroutine (" + TestCrashKey + ")") }()
			time.Sleep(time.Minute)
		case "fatal":
			debug.SetMaxStack(64 << 10)
			overflow(0)
		default:
			e.logf("%s=%s: want main, goroutine or fatal; not crashing", TestCrashKey, v)
		}
	}
	return rest
}

// overflow recurses until the stack limit: a fatal runtime error.
func overflow(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	return overflow(n+1) + int(pad[(n+1)%256])
}

// LastGaspArg, as argv[1], makes ktstr-init the last-gasp watcher
// (RunLastGasp); the init starts it itself.
const LastGaspArg = "__ktstr_last_gasp"

// startLastGasp starts the last-gasp watcher: a child of PID 1 holding the
// read end of the pipe the Go runtime copies its crash report to, and its
// own descriptor of the frame port. A failure to start it is logged and
// the run goes on without it.
func startLastGasp(e *env, port *os.File) {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	startLastGaspCmd(e, port, exec.Command(self, LastGaspArg))
}

// startLastGaspCmd is startLastGasp with the watcher's command given
// (tests run their own binary).
func startLastGaspCmd(e *env, port *os.File, cmd *exec.Cmd) {
	r, w, err := os.Pipe()
	if err != nil {
		e.logf("last-gasp watcher not started: %v", err)
		return
	}
	defer r.Close()
	defer w.Close()
	cmd.ExtraFiles = []*os.File{r, port} // fds 3 and 4
	cmd.Stdout, cmd.Stderr = e.console, e.console
	if err := cmd.Start(); err != nil {
		e.logf("last-gasp watcher not started: %v", err)
		return
	}
	// One page of pipe: see lastGaspHold. Fd() also makes w blocking, so
	// the runtime's writes wait for the watcher instead of failing.
	_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, lastGaspPipe)
	if err := debug.SetCrashOutput(w, debug.CrashOptions{}); err != nil {
		e.logf("last-gasp watcher: set crash output: %v", err)
		cmd.Process.Kill()
		return
	}
	go crashBallast(lastGaspBallast, make(chan struct{}))
	// The runtime keeps its own duplicate of w; ours closes on return.
	// The child is never waited for: the guest powers off with it blocked
	// on the pipe (and PID 1 reaps it if it ever exits).
	go func() { _ = cmd.Wait() }()
}

// The last gasp races the kernel: when the runtime has printed its report
// it exits, and the kernel panics at once. So the watcher waits only for
// the report's first line (lastGaspWait at most: the runtime writes
// "panic: " and the message in separate writes, and a loaded guest has
// been seen to take more than 20 ms between them; the runtime cannot exit
// meanwhile, see crashBallast), sends its two frames,
// and only then prints on the (slow, serial) console. The crash pipe is
// one page (F_SETPIPE_SZ): a runtime with more to report blocks on it, and
// so stays alive, until the watcher reads on, lastGaspHold after its
// frames, which gives the host time to take them out of the virtqueue
// (port writes return before it has).
const (
	lastGaspWait = time.Second
	lastGaspMax  = 1500
	lastGaspHold = 250 * time.Millisecond
	lastGaspPipe = 4096
)

// lastGaspBallast is the depth of crashBallast's parked stack.
const lastGaspBallast = 90

// crashBallast parks a goroutine lastGaspBallast frames deep for the whole
// run. It makes every crash report (GOTRACEBACK=all prints it) longer
// than the one-page crash pipe, so a crashing runtime always blocks on the
// pipe while the last-gasp watcher sends its frames: without it a short
// report (a panic in a goroutine with few others alive) fitted in the
// pipe, the runtime exited at once, and the kernel panicked before the
// watcher ran (2 of 4 such crashes lost their frames in the lab). Cost: one
// goroutine with a ~20 KiB stack.
func crashBallast(depth int, park chan struct{}) int {
	if depth == 0 {
		<-park
		return 0
	}
	return crashBallast(depth-1, park) + 1
}

// RunLastGasp is the last-gasp watcher's main: it waits for the Go
// runtime of PID 1 to report a crash on fd 3, then writes a log frame and
// a guest_exit frame with ExitInitCrashed on the port at fd 4 and a line
// on the console. It returns when PID 1 closes the pipe (a crash ends
// with the runtime exiting).
func RunLastGasp() int {
	_ = unix.SetNonblock(3, true) // pollable: reads with a deadline
	crash := os.NewFile(3, "crash-output")
	port := os.NewFile(4, "port")
	if crash == nil || port == nil {
		return 2
	}
	return lastGasp(crash, port, os.Stderr)
}

// deadliner is a reader whose reads can time out (an *os.File pipe).
type deadliner interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

func lastGasp(crash deadliner, port io.Writer, console io.Writer) int {
	buf := make([]byte, 0, lastGaspMax)
	chunk := make([]byte, lastGaspMax)
	for len(buf) == 0 { // block until the crash (or EOF: nothing to say)
		_ = crash.SetReadDeadline(time.Time{})
		n, err := crash.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil && n == 0 {
			return 0
		}
	}
	for deadline := time.Now().Add(lastGaspWait); len(buf) < lastGaspMax && bytes.IndexByte(bytes.TrimLeft(buf, "\n"), '\n') < 0; {
		_ = crash.SetReadDeadline(deadline)
		n, err := crash.Read(chunk[:lastGaspMax-len(buf)])
		buf = append(buf, chunk[:n]...)
		if err != nil {
			break
		}
	}
	report := strings.TrimSpace(strings.ToValidUTF8(string(buf), "?"))
	first, _, _ := strings.Cut(report, "\n")
	if !strings.HasPrefix(first, "panic: ") {
		// A throw: the runtime prints "fatal error: MSG" to stderr (the
		// console) before it starts copying to the crash output, so the
		// report here starts at "runtime stack:" or a goroutine header.
		first = "fatal error, its message is on the console just above"
	}
	enc := wire.NewEncoder(port, wire.WithClock(func() uint64 { return uint64(nanotime()) }))
	err1 := enc.Encode(wire.Log{Text: "FATAL: PID 1 is dying, the kernel will panic; Go runtime: " + report + " (full report on the console)"})
	err2 := enc.Encode(wire.GuestExit{Code: ExitInitCrashed})
	fmt.Fprintf(console, "ktstr-init: FATAL: PID 1 is dying (Go runtime: %s); guest_exit %d sent, the kernel will panic\n", first, ExitInitCrashed)
	for _, err := range []error{err1, err2} {
		if err != nil {
			fmt.Fprintf(console, "ktstr-init: last gasp: %v\n", err)
		}
	}
	time.Sleep(lastGaspHold)
	_ = crash.SetReadDeadline(time.Time{})
	_, _ = io.Copy(io.Discard, crash) // let the runtime finish its report
	return 0
}

// plan is the resolved run: configuration, overrides and scenario.
type plan struct {
	cfg           *runconfig.Config
	sched         *runconfig.Scheduler
	sc            *scenario.Scenario
	scName        string
	attachTimeout time.Duration
	hold          time.Duration
	kthreaddCPU   int
	probe         bool     // ktstr.probe: attach the auto-repro probes
	probeFuncs    []string // and generic ones on these functions
}

func runInit(e *env, version string) int {
	if err := doMounts(e); err != nil {
		e.logf("%v", err)
		return ExitInternal
	}
	cmdlineB, _ := os.ReadFile("/proc/cmdline")
	cmdline := strings.TrimSpace(string(cmdlineB))
	ov, ovErr := ParseOverrides(cmdline)
	if ovErr == nil && (ov.HasExec || ov.Shell) {
		return runInteractive(e, ov)
	}
	portName := DefaultPort
	if ovErr == nil && ov.Port != "" {
		portName = ov.Port
	}
	port, portPath, err := openPort(e, portName)
	if err != nil {
		e.logf("%v", err)
		return ExitNoPortNoFrames
	}
	enc := wire.NewEncoder(port, wire.WithClock(func() uint64 { return uint64(nanotime()) }))
	startLastGasp(e, port)
	e.mu.Lock()
	e.enc = enc
	pending := e.pending
	e.pending = nil
	e.mu.Unlock()
	topo, topoErr := ReadTopology("/sys")
	cpus := 0
	if topoErr == nil {
		cpus = len(topo.Online)
	}
	// The plan is made before guest_ready so that the frame can name the
	// scheduler and scenario; its errors are reported after it.
	var p *plan
	var planErr error
	if ovErr == nil {
		p, planErr = makePlan(ov)
	}
	ready := wire.GuestReady{Kernel: unameRelease(), CPUs: cpus, MemoryKiB: memKiB(), InitVersion: version, UptimeNS: bootNS(), Cmdline: cmdline}
	if topoErr == nil {
		ready.Topology = fmt.Sprintf("%dcpu/%dllc/%dnode", len(topo.Online), len(topo.LLCs), len(topo.Nodes))
	}
	if p != nil {
		ready.Scheduler, ready.Scenario = p.schedulerName(), p.scName
	}
	e.send(ready)
	for _, p := range pending {
		e.send(wire.Log{Text: p})
	}
	e.phase(wire.PhaseInitStarted, "frames on "+portPath)
	if ovErr == nil {
		ov.Unknown = testCrash(e, ov.Unknown)
	}
	if ovErr != nil {
		e.logf("%v", ovErr)
		return ExitBadConfig
	}
	for _, k := range ov.Unknown {
		e.logf("ignoring unknown kernel command-line key %s (known: ktstr.mode, ktstr.exec, ktstr.scenario, ktstr.attach_timeout, ktstr.hold, ktstr.sched_args, ktstr.scheduler, ktstr.port, ktstr.kthreadd_cpu, ktstr.spread_pct, ktstr.starvation_ms, ktstr.task_stall_ms, ktstr.probe)", k)
	}
	if topoErr != nil {
		e.logf("%v", topoErr)
		return ExitInternal
	}
	if planErr != nil {
		e.logf("%v", planErr)
		return ExitBadConfig
	}
	if err := checkCpusets(p.sc, topo); err != nil {
		e.logf("scenario %s on this guest (%d CPUs, %d LLCs, %d NUMA nodes): %v", p.scName, len(topo.Online), len(topo.LLCs), len(topo.Nodes), err)
		return ExitBadConfig
	}
	return execute(e, p, topo)
}

// schedulerName is the scheduler's name and arguments as the verdict
// line shows them; "eevdf" for a baseline run.
func (p *plan) schedulerName() string {
	if p.sched == nil {
		return "eevdf"
	}
	name := p.sched.Name
	if name == "" {
		name = filepath.Base(p.sched.Path)
	}
	return strings.Join(append([]string{name}, p.sched.Args...), " ")
}

// makePlan reads the run configuration and applies the command line.
func makePlan(ov *Overrides) (*plan, error) {
	cfg := &runconfig.Config{}
	if b, err := os.ReadFile(runconfig.Path); err == nil {
		if cfg, err = runconfig.Unmarshal(b); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", runconfig.Path, err)
	}
	p := &plan{cfg: cfg, sched: cfg.Scheduler, attachTimeout: DefaultAttachTimeout, hold: ov.Hold, kthreaddCPU: ov.KthreaddCPU,
		probe: ov.Probe, probeFuncs: ov.ProbeFuncs}
	if cfg.AttachTimeoutMS > 0 {
		p.attachTimeout = time.Duration(cfg.AttachTimeoutMS) * time.Millisecond
	}
	if ov.AttachTimeout > 0 {
		p.attachTimeout = ov.AttachTimeout
	}
	if ov.NoScheduler {
		p.sched = nil
	}
	if p.sched != nil {
		s := *p.sched
		if s.Path == "" {
			s.Path = runconfig.SchedulerPath
		}
		if ov.HasSchedArgs {
			s.Args = ov.SchedArgs
		}
		p.sched = &s
	}
	var err error
	switch {
	case ov.Scenario != "":
		p.scName = ov.Scenario
		if strings.ContainsRune(ov.Scenario, '/') {
			p.sc, err = parseScenarioFile(ov.Scenario)
		} else {
			p.sc, err = scenario.Lookup(ov.Scenario)
		}
	case cfg.Scenario != "":
		p.scName = cfg.ScenarioName
		if p.scName == "" {
			p.scName = filepath.Base(cfg.Scenario)
		}
		p.sc, err = parseScenarioFile(cfg.Scenario)
	default:
		if _, serr := os.Stat(runconfig.ScenarioPath); serr == nil {
			p.scName = cfg.ScenarioName
			p.sc, err = parseScenarioFile(runconfig.ScenarioPath)
		} else {
			p.scName = DefaultScenario
			p.sc, err = scenario.Lookup(DefaultScenario)
		}
	}
	if err != nil {
		return nil, err
	}
	if p.scName == "" {
		p.scName = p.sc.Name
	}
	if ov.SpreadPct > 0 {
		p.sc.Checks.SpreadPct = ov.SpreadPct
	}
	if ov.StarvationMS > 0 {
		p.sc.Checks.StarvationMS = ov.StarvationMS
	}
	switch {
	case ov.TaskStallMS > 0:
		p.sc.Checks.TaskStallMS = ov.TaskStallMS
	case ov.TaskStallMS < 0:
		p.sc.Checks.Disable = append(p.sc.Checks.Disable, CheckTaskStall)
	}
	return p, nil
}

func parseScenarioFile(path string) (*scenario.Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s, err := scenario.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// checkCpusets resolves every cpuset the scenario names, so that a
// scenario that does not fit the guest fails before anything starts.
func checkCpusets(sc *scenario.Scenario, topo *scenario.Topology) error {
	return sc.CheckTopology(topo)
}

// finish reports the exit code, flushes and powers off.
func finish(e *env, code int) {
	fmt.Fprintf(e.console, "ktstr-init: exit %d\n", code)
	e.send(wire.GuestExit{Code: int32(code)})
	unix.Sync()
	// Writes to a virtio port return before the host has taken the data
	// out of the virtqueue, and no interface says when it has: give the
	// host a moment before the machine goes away.
	time.Sleep(250 * time.Millisecond)
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Still here: the power-off failed. Say so everywhere, then try a
	// reboot; PID 1 must not return (the kernel would panic).
	e.logf("FATAL: power off failed: %v; trying a reboot", err)
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	e.logf("FATAL: reboot failed too: %v; waiting for the host to stop the guest", err)
	for {
		time.Sleep(time.Hour)
	}
}
