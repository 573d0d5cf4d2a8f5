package guest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/lab"
	"github.com/ktstr-go/ktstr/pkg/guest"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// End-to-end tests: the real init, packed by the real ktstr-mkinitramfs,
// booted on the fixture kernel under plain QEMU TCG (internal/lab reference
// mode). Each boot takes 10-25 s on this project's 2-core machine.

// e2eAccel: single-threaded TCG (both vCPUs on one host thread, round
// robin). With the default multi-threaded TCG about 1 boot in 10 on this
// loaded 2-core machine died with a kernel oops whose RIP sits inside a
// just-patched static-branch NOP (sched_clock_cpu, ttwu_queue_wakelist):
// live kernel text patching racing another vCPU. Single-threaded TCG has
// no such race, and was also faster here (a run in 5 s instead of 10-20 s)
// with far steadier CPU shares (1.5 % spread against up to 42 %).
const e2eAccel = "tcg,thread=single"

// e2eCmdline is added to every boot, after the lab's TSC options.
//
// ktstr.spread_pct=50: the fairness check's arithmetic is unit-tested; on
// multi-threaded TCG with the 2-core host shared by other jobs (load 10
// and more) two spinners under scx_simple showed a 42 % CPU-share spread,
// so the e2e runs only catch gross unfairness.
const e2eCmdline = "loglevel=4 ktstr.spread_pct=50"

type e2eEnv struct {
	kernel, bin, scheds, cache string
}

var (
	cacheOnce sync.Once
	cacheDir  string
)

var skipOnce sync.Map

// skipLoud skips t and, because go test hides skip messages without -v,
// also says why on stderr (once per reason).
func skipLoud(t *testing.T, msg string) {
	t.Helper()
	if _, dup := skipOnce.LoadOrStore(msg, true); !dup {
		fmt.Fprintf(os.Stderr, "pkg/guest: %s: %s\n", t.Name(), msg)
	}
	t.Skip(msg)
}

func needE2E(t *testing.T) e2eEnv {
	t.Helper()
	if testing.Short() {
		skipLoud(t, "SKIP: -short: no QEMU boots")
	}
	if m := lab.Missing(); m != "" {
		skipLoud(t, fmt.Sprintf("SKIP (fixture missing): %s", m))
	}
	bin := os.Getenv("KTSTR_BIN")
	if bin == "" {
		skipLoud(t, "SKIP (fixture missing): KTSTR_BIN is not set: run `make` and point it at bin/ (make test exports it)")
	}
	for _, tool := range []string{"ktstr-init", "ktstr-mkinitramfs"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			skipLoud(t, fmt.Sprintf("SKIP (fixture missing): %s/%s: %v (run make)", bin, tool, err))
		}
	}
	if out, err := exec.Command(filepath.Join(bin, "ktstr-mkinitramfs"), "--help").CombinedOutput(); err != nil || bytes.Contains(out, []byte("not implemented")) {
		skipLoud(t, fmt.Sprintf("SKIP (fixture missing): %s/ktstr-mkinitramfs is not usable yet (%v): %s", bin, err, firstLine(out)))
	}
	cacheOnce.Do(func() {
		d, err := os.MkdirTemp("", "ktstr-guest-e2e-")
		if err == nil {
			cacheDir = d
		}
	})
	if cacheDir == "" {
		t.Fatal("cannot create a cache directory")
	}
	return e2eEnv{kernel: os.Getenv("KTSTR_KERNEL"), bin: bin, scheds: os.Getenv("KTSTR_SCHEDULERS"), cache: cacheDir}
}

func (e e2eEnv) scheduler(t *testing.T, name string) string {
	t.Helper()
	if e.scheds == "" {
		skipLoud(t, fmt.Sprintf("SKIP (fixture missing): KTSTR_SCHEDULERS is not set; %s needed", name))
	}
	p := filepath.Join(e.scheds, name)
	if _, err := os.Stat(p); err != nil {
		skipLoud(t, fmt.Sprintf("SKIP (fixture missing): scheduler %s: %v", p, err))
	}
	return p
}

// initramfs runs ktstr-mkinitramfs and returns the blob's path.
func (e e2eEnv) initramfs(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(e.bin, "ktstr-mkinitramfs"), append([]string{"--init", filepath.Join(e.bin, "ktstr-init")}, args...)...)
	cmd.Env = append(os.Environ(), "KTSTR_CACHE_DIR="+e.cache)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ktstr-mkinitramfs %q: %v: %s", args, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// run is one decoded guest run.
type run struct {
	frames   []wire.Message
	exit     *int32
	console  []byte
	wall     time.Duration
	guestDur time.Duration
}

func (r *run) phases() []string {
	var out []string
	for _, m := range r.frames {
		if p, ok := m.(wire.Phase); ok {
			out = append(out, p.Phase)
		}
	}
	return out
}

func (r *run) checks() []wire.CheckResult {
	var out []wire.CheckResult
	for _, m := range r.frames {
		if c, ok := m.(wire.CheckResult); ok {
			out = append(out, c)
		}
	}
	return out
}

func (r *run) schedExit() *wire.SchedExit {
	for _, m := range r.frames {
		if x, ok := m.(wire.SchedExit); ok {
			return &x
		}
	}
	return nil
}

func (r *run) count(t wire.Type) int {
	n := 0
	for _, m := range r.frames {
		if m.MsgType() == t {
			n++
		}
	}
	return n
}

func (r *run) String() string {
	var b strings.Builder
	for _, m := range r.frames {
		if o, ok := m.(wire.Output); ok {
			fmt.Fprintf(&b, "output p%d: %q\n", o.Program, o.Data)
			continue
		}
		fmt.Fprintf(&b, "%s %+v\n", m.MsgType(), m)
	}
	c := r.console
	if len(c) > 3000 {
		c = c[len(c)-3000:]
	}
	fmt.Fprintf(&b, "console tail:\n%s", c)
	return b.String()
}

// bootAttempts is the retry policy for the lab itself: a boot whose kernel
// never reached the init (no guest_ready frame: a kernel panic or hang
// during boot under TCG, seen in about 1 of 10 boots on the loaded 2-core
// machine) is logged and retried once; anything after guest_ready is the
// run's own outcome and is never retried.
const bootAttempts = 2

func boot(t *testing.T, e e2eEnv, blob, cmdline string, extra ...string) *run {
	t.Helper()
	var res *lab.Result
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
		var err error
		res, err = lab.Reference(ctx, lab.ReferenceOptions{
			Kernel: e.kernel, Initramfs: blob, CPUs: 2, MemoryMiB: 512, Accel: e2eAccel,
			Cmdline: lab.TCGTimeCmdline() + " " + e2eCmdline + " " + cmdline, Timeout: 90 * time.Second, ExtraArgs: extra,
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		lab.KeepOnFailure(t, res)
		if reachedInit(res.Stream) || attempt == bootAttempts {
			break
		}
		t.Logf("LAB FLAKE (attempt %d of %d): the kernel never reached the init (QEMU exit %d, timed out %v); console tail: %s",
			attempt, bootAttempts, res.ExitCode, res.TimedOut, tailString(res.Console, 400))
	}
	r := &run{console: res.Console, wall: res.Wall}
	if err := res.Err(); err != nil {
		t.Fatalf("%v (%d stream bytes)\nQEMU: %s\nconsole:\n%s", err, len(res.Stream), res.Args, res.Console)
	}
	d := wire.NewDecoder(bytes.NewReader(res.Stream))
	var first, last uint64
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream: %v\n%s", err, r)
		}
		m, err := wire.Unmarshal(f.Type, f.Payload)
		if err != nil {
			t.Fatalf("frame %s: %v", f.Type, err)
		}
		if len(r.frames) == 0 {
			first = f.TimeNS
		}
		last = f.TimeNS
		r.frames = append(r.frames, m)
		if g, ok := m.(wire.GuestExit); ok {
			c := g.Code
			r.exit = &c
		}
	}
	r.guestDur = time.Duration(last - first)
	if r.exit == nil {
		t.Fatalf("no guest_exit frame\n%s", r)
	}
	if len(r.frames) == 0 || r.frames[0].MsgType() != wire.TypeGuestReady || r.frames[len(r.frames)-1].MsgType() != wire.TypeGuestExit {
		t.Fatalf("stream must open with guest_ready and end with guest_exit\n%s", r)
	}
	t.Logf("QEMU wall %v, guest_ready to guest_exit %v, exit %d", res.Wall.Round(100*time.Millisecond), r.guestDur.Round(10*time.Millisecond), *r.exit)
	return r
}

func wantExit(t *testing.T, r *run, code int) {
	t.Helper()
	if int(*r.exit) != code {
		t.Fatalf("exit %d, want %d\n%s", *r.exit, code, r)
	}
}

func wantChecks(t *testing.T, r *run, pass bool, names ...string) {
	t.Helper()
	for _, n := range names {
		found := false
		for _, c := range r.checks() {
			if c.Name == n {
				found = true
				if c.Pass != pass {
					t.Errorf("check %s pass=%v, want %v: %+v", n, c.Pass, pass, c)
				}
			}
		}
		if !found {
			t.Errorf("no %s check in the stream", n)
		}
	}
}

// TestE2EBaseline: no scheduler, the default (steady) scenario, and the
// port laid out as ktstr-boot lays it out: a console on port 0 and the
// "ktstr" port as port 1 of one multiport virtio console.
func TestE2EBaseline(t *testing.T) {
	e := needE2E(t)
	blob := e.initramfs(t)
	r := boot(t, e, blob, "ktstr.hold=1500", "-chardev", "null,id=hvc0", "-device", "virtconsole,chardev=hvc0,nr=0")
	wantExit(t, r, guest.ExitPass)
	wantChecks(t, r, true, guest.CheckStarvation, guest.CheckFairness, guest.CheckIsolation)
	if r.schedExit() != nil || r.count(wire.TypeCgroupMetrics) != 1 || r.count(wire.TypeWorkerMetrics) != 2 {
		t.Fatalf("baseline: want no sched_exit, 1 cgroup_metrics, 2 worker_metrics\n%s", r)
	}
	if !strings.Contains(string(r.console), "frames on /dev/vport0p1") {
		t.Errorf("the init did not use port 1 of the multiport console\n%s", r)
	}
}

// TestE2ESchedulers: each fixture scheduler attaches, passes the steady
// scenario and unregisters cleanly.
func TestE2ESchedulers(t *testing.T) {
	e := needE2E(t)
	for _, name := range []string{"scx_simple", "scx_qmap", "scx_central", "scx_flatcg"} {
		t.Run(name, func(t *testing.T) {
			blob := e.initramfs(t, "--scheduler", e.scheduler(t, name), "--scenario", "steady")
			cmdline := "ktstr.hold=1500"
			if name == "scx_central" {
				// Linux 6.12 runs ops.init on an unbound helper kthread and
				// scx_central fails ("init from non-central CPU") unless it
				// lands on CPU 0; 3 of 3 boots failed without this, 3 of 3
				// attached with it.
				cmdline += " ktstr.kthreadd_cpu=0"
			}
			r := boot(t, e, blob, cmdline)
			if name == "scx_flatcg" && r.exit != nil && int(*r.exit) == guest.ExitSchedulerDied {
				// scx_flatcg (Linux 6.12's example) sometimes starves the
				// root cgroup's tasks (the init, the sched_ext watchdog's
				// kworker) while cg0's spinners saturate both CPUs: in 2
				// of 3 CI-style runs the kernel's watchdog ended it with
				// "runnable task stall" after 30 s. That is the
				// scheduler's behaviour, not the harness's: the run must
				// then be reported as exactly that, and is logged loudly.
				x := r.schedExit()
				if x == nil || x.Kind != 1026 || x.KindName != "error_stall" {
					t.Fatalf("scx_flatcg died without an error_stall sched_exit\n%s", r)
				}
				wantChecks(t, r, false, guest.CheckSchedDied)
				t.Logf("NOTE: scx_flatcg stalled a task (%s: %s); the harness caught it with the right frames and exit code %d", x.Reason, x.Message, guest.ExitSchedulerDied)
				return
			}
			wantExit(t, r, guest.ExitPass)
			want := []string{wire.PhaseInitStarted, wire.PhaseSchedulerStarting, wire.PhaseSchedulerAttached, wire.PhaseScenarioStart, wire.PhaseScenarioEnd}
			if got := r.phases(); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("phases %v, want %v\n%s", got, want, r)
			}
			wantChecks(t, r, true, guest.CheckNotAttached, guest.CheckStarvation, guest.CheckFairness, guest.CheckIsolation, guest.CheckSchedDied)
			x := r.schedExit()
			if x == nil || x.Kind != 64 || x.KindName != "unreg" || x.ExitCode == nil {
				t.Fatalf("sched_exit %+v, want a clean unregistration (kind 64) with an exit status\n%s", x, r)
			}
			if r.count(wire.TypeOutput) == 0 {
				t.Errorf("no output frames from the scheduler")
			}
		})
	}
}

// TestE2EFailures: the harness catches a scheduler that errors out
// (scx_qmap's own fault injection), one killed mid-run, one that never
// attaches in time, and a scenario that does not fit the guest.
func TestE2EFailures(t *testing.T) {
	e := needE2E(t)
	t.Run("qmap-scx_bpf_error", func(t *testing.T) {
		// -e N: scx_bpf_error() after N enqueues (~300/s here: about 1-2 s into the run).
		blob := e.initramfs(t, "--scheduler", e.scheduler(t, "scx_qmap"), "--", "-e", "600")
		r := boot(t, e, blob, "ktstr.hold=4000")
		wantExit(t, r, guest.ExitSchedulerDied)
		wantChecks(t, r, false, guest.CheckSchedDied)
		x := r.schedExit()
		if x == nil || x.Kind != 1025 || x.KindName != "error_bpf" || x.Reason != "scx_bpf_error" || x.Message == "" {
			t.Fatalf("sched_exit %+v, want error_bpf (1025) with the scheduler's message\n%s", x, r)
		}
	})
	t.Run("qmap-stall", func(t *testing.T) {
		// -t N: scx_qmap stops dispatching every N-th user task enqueue, so
		// a task stalls and the sched_ext watchdog (5 s for qmap) fires.
		blob := e.initramfs(t, "--scheduler", e.scheduler(t, "scx_qmap"), "--", "-t", "2")
		r := boot(t, e, blob, "ktstr.hold=8000")
		wantExit(t, r, guest.ExitSchedulerDied)
		wantChecks(t, r, false, guest.CheckSchedDied)
		x := r.schedExit()
		if x == nil || x.Kind != 1026 || x.KindName != "error_stall" || !strings.Contains(x.Message, "failed to run") {
			t.Fatalf("sched_exit %+v, want error_stall (1026) naming the stalled task\n%s", x, r)
		}
	})
	t.Run("scheduler-killed", func(t *testing.T) {
		if _, err := os.Stat("/bin/busybox"); err != nil {
			skipLoud(t, "SKIP (fixture missing): /bin/busybox (apt-get install busybox-static) for the payload")
		}
		blob := e.initramfs(t, "--scheduler", e.scheduler(t, "scx_simple"), "--busybox", "/bin/busybox", "--scenario", "testdata/kill-scheduler.json")
		r := boot(t, e, blob, "ktstr.hold=1500")
		wantExit(t, r, guest.ExitSchedulerDied)
		wantChecks(t, r, false, guest.CheckSchedDied)
		x := r.schedExit()
		if x == nil || x.Signal != "SIGKILL" || x.Kind != 64 {
			t.Fatalf("sched_exit %+v, want the process killed by SIGKILL and sched_ext unregistered\n%s", x, r)
		}
		found := false
		for _, p := range r.phases() {
			found = found || p == wire.PhaseSchedulerDied
		}
		if !found {
			t.Fatalf("no scheduler_died phase\n%s", r)
		}
		// The payload's output came back as its own program, and its
		// exit status was reported.
		var out bytes.Buffer
		payloadOK := false
		for _, m := range r.frames {
			switch v := m.(type) {
			case wire.Output:
				if v.Program == wire.ProgramPayloadBase {
					out.Write(v.Data)
				}
			case wire.WorkerMetrics:
				if v.Work == "payload" && v.ExitCode != nil && *v.ExitCode == 0 {
					payloadOK = true
				}
			}
		}
		if !strings.Contains(out.String(), "payload-says-hi") || !payloadOK {
			t.Fatalf("payload output %q, exit reported %v\n%s", out.String(), payloadOK, r)
		}
	})
	t.Run("not-attached", func(t *testing.T) {
		blob := e.initramfs(t, "--scheduler", e.scheduler(t, "scx_simple"))
		r := boot(t, e, blob, "ktstr.attach_timeout=50")
		wantExit(t, r, guest.ExitNotAttached)
		wantChecks(t, r, false, guest.CheckNotAttached)
		if r.count(wire.TypeStimulus) != 0 {
			t.Fatalf("scenario ran without a scheduler\n%s", r)
		}
	})
	t.Run("scenario-does-not-fit", func(t *testing.T) {
		blob := e.initramfs(t)
		r := boot(t, e, blob, "ktstr.scenario=ping-pong-cross-llc")
		wantExit(t, r, guest.ExitBadConfig)
		if !strings.Contains(string(r.console), "LLC") {
			t.Fatalf("the console does not say what is missing\n%s", r)
		}
	})
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// reachedInit reports whether a stream starts with a guest_ready frame.
func reachedInit(stream []byte) bool {
	f, err := wire.NewDecoder(bytes.NewReader(stream)).Next()
	return err == nil && f.Type == wire.TypeGuestReady
}

func tailString(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// TestE2EExec: ktstr-boot's --exec guest contract, booted the way
// ktstr-boot lays out hvc0 (virtio console port 0): ktstr.exec=BASE64 runs
// the command with /bin/sh (busybox packed by ktstr-mkinitramfs) and
// reports its status on hvc0 as KTSTR_EXEC_STATUS=N.
func TestE2EExec(t *testing.T) {
	e := needE2E(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		skipLoud(t, "SKIP (fixture missing): /bin/busybox (Debian busybox-static) for the guest's /bin/sh")
	}
	blob := e.initramfs(t, "--busybox", "/bin/busybox")
	hvc := filepath.Join(t.TempDir(), "hvc0")
	cmd := runconfig.ExecCmdline("echo hello from $(uname -s); exit 7")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	res, err := lab.Reference(ctx, lab.ReferenceOptions{
		Kernel: e.kernel, Initramfs: blob, CPUs: 1, MemoryMiB: 256, Accel: e2eAccel,
		Cmdline: lab.TCGTimeCmdline() + " " + e2eCmdline + " " + cmd, Timeout: 90 * time.Second,
		ExtraArgs: []string{"-chardev", "file,id=hvc0,path=" + hvc, "-device", "virtconsole,chardev=hvc0,nr=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(hvc)
	if !strings.Contains(string(out), "hello from Linux") || !strings.Contains(string(out), runconfig.ExecStatusPrefix+"7") {
		t.Fatalf("hvc0 output %q lacks the command's output and %s7 (QEMU timed out %v)\nconsole:\n%s", out, runconfig.ExecStatusPrefix, res.TimedOut, tailString(res.Console, 800))
	}
}

// TestE2EWorkloads: a few of the newer work types run in a real guest
// (EEVDF) and every worker reports plausible workload metrics: progress in
// its own unit, rates, off-CPU time, schedstat run delay, and for the work
// that waits on others, ordered wake latencies. No figure is compared with
// a time limit.
func TestE2EWorkloads(t *testing.T) {
	e := needE2E(t)
	blob := e.initramfs(t, "--scenario", "testdata/workloads.json")
	r := boot(t, e, blob, "")
	wantExit(t, r, guest.ExitPass)
	units := map[string]bool{}
	workers := 0
	for _, m := range r.frames {
		switch v := m.(type) {
		case wire.WorkerMetrics:
			workers++
			units[v.Work+": "+v.Unit] = true
			if v.Iterations == 0 || v.Unit == "" || v.RatePerS <= 0 || v.RatePerCPUS <= 0 || v.CPUTimeNS == 0 {
				t.Errorf("%s worker %d: no progress or rates: %+v", v.Work, v.Worker, v)
			}
			if v.OffCPUNS != v.WallNS-min(v.WallNS, v.CPUTimeNS) {
				t.Errorf("%s worker %d: off-CPU %d, wall %d, CPU %d", v.Work, v.Worker, v.OffCPUNS, v.WallNS, v.CPUTimeNS)
			}
			if v.Timeslices == 0 {
				t.Errorf("%s worker %d: no schedstat figures (timeslices 0)", v.Work, v.Worker)
			}
			waits := v.Work == "pipe_io" || v.Work == "cache_yield" || v.Work == "io_sync" || v.Unit == "wakes received"
			if waits && v.WakeSamples == 0 {
				t.Errorf("%s worker %d (%s): no wake samples", v.Work, v.Worker, v.Unit)
			}
			if v.WakeSamples > 0 && (v.WakeLatP99NS < v.WakeLatP50NS || v.WakeLatMaxNS < v.WakeLatP99NS) {
				t.Errorf("%s worker %d: wake p50 %d p99 %d max %d", v.Work, v.Worker, v.WakeLatP50NS, v.WakeLatP99NS, v.WakeLatMaxNS)
			}
			if v.MigrationRatio != 0 && v.MigrationRatio != float64(int(v.MigrationRatio*1000+0.5))/1000 {
				t.Errorf("%s worker %d: migration ratio %v not rounded", v.Work, v.Worker, v.MigrationRatio)
			}
		case wire.CgroupMetrics:
			if v.Iterations == 0 || v.MinRatePerS <= 0 {
				t.Errorf("cgroup %s: %+v", v.Cgroup, v)
			}
			if v.Iterations > 0 && v.MigrationRatio > float64(v.Migrations)/float64(v.Iterations)+0.001 {
				t.Errorf("cgroup %s: migration ratio %v for %d/%d", v.Cgroup, v.MigrationRatio, v.Migrations, v.Iterations)
			}
		}
	}
	if workers != 11 {
		t.Errorf("%d worker_metrics frames, want 11\n%s", workers, r)
	}
	for _, u := range []string{"futex_fan_out: wakes sent", "futex_fan_out: wakes received", "fork_exit: forks", "custom: program runs", "mutex_contention: lock acquisitions"} {
		if !units[u] {
			t.Errorf("no worker reported %q (have %v)", u, units)
		}
	}
}
