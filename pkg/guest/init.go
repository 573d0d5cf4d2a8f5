package guest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// RunInit is PID 1's main. It never returns: it powers the guest off.
func RunInit(version string) {
	// Spare Ps: a scheduler under test can stall any of the init's
	// fair-class threads while it holds a P; the task-stall scan (on a
	// SCHED_FIFO thread of its own) must still find an idle P when its
	// system calls return. Idle Ps cost nothing.
	runtime.GOMAXPROCS(max(8, 2*runtime.NumCPU()))
	ensureConsole()
	e := &env{console: os.Stderr}
	defer func() {
		// A panic in PID 1 would panic the kernel with no guest_exit frame.
		if r := recover(); r != nil {
			e.logf("internal error: %v", r)
			finish(e, ExitInternal)
		}
	}()
	code := runInit(e, version)
	finish(e, code)
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
}

func runInit(e *env, version string) int {
	if err := doMounts(e); err != nil {
		e.logf("%v", err)
		return ExitInternal
	}
	if _, err := RealtimeThreads(os.Getpid()); err != nil { // needs /proc; see taskstall.go
		e.logf("cannot run the init at SCHED_FIFO: %v; a scheduler that stalls the init's threads can stall its checks", err)
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
	if ovErr != nil {
		e.logf("%v", ovErr)
		return ExitBadConfig
	}
	for _, k := range ov.Unknown {
		e.logf("ignoring unknown kernel command-line key %s (known: ktstr.mode, ktstr.exec, ktstr.scenario, ktstr.attach_timeout, ktstr.hold, ktstr.sched_args, ktstr.scheduler, ktstr.port, ktstr.kthreadd_cpu, ktstr.spread_pct, ktstr.starvation_ms, ktstr.task_stall_ms)", k)
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
	p := &plan{cfg: cfg, sched: cfg.Scheduler, attachTimeout: DefaultAttachTimeout, hold: ov.Hold, kthreaddCPU: ov.KthreaddCPU}
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
	res := func(spec, what string) error {
		cs, err := scenario.ParseCpuset(spec)
		if err == nil {
			_, err = cs.Resolve(topo)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	for i, st := range sc.Steps {
		for _, c := range st.Cgroups {
			if err := res(c.Cpuset, fmt.Sprintf("step %d cgroup %s", i, c.Name)); err != nil {
				return err
			}
		}
		for _, o := range st.Ops {
			switch {
			case o.Op == scenario.OpSetCpuset:
				if err := res(o.Cpuset, fmt.Sprintf("step %d set_cpuset %s", i, o.Cgroup)); err != nil {
					return err
				}
			case o.Op == scenario.OpAddCgroup && o.Add != nil:
				if err := res(o.Add.Cpuset, fmt.Sprintf("step %d add_cgroup %s", i, o.Add.Name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
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
	fmt.Fprintf(e.console, "ktstr-init: power off failed: %v; rebooting\n", err)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for {
		time.Sleep(time.Hour)
	}
}
