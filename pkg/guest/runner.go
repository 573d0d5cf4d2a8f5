package guest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

// CgroupRoot is where the init creates the scenario's cgroups.
const CgroupRoot = "/sys/fs/cgroup/ktstr"

// reportTimeout bounds the wait for a worker's report at the end of a
// step beyond its own sleep; a worker that misses it counts as stuck.
const reportTimeout = 3 * time.Second

type rtWorker struct {
	id      int
	cg      *rtCgroup
	work    scenario.Work
	cmd     *exec.Cmd
	pid     int
	ctl     *os.File
	reports chan workerReport
	sent    uint64
	exited  chan struct{}
	payload bool
	hello   bool
	cpuBase uint64 // payload: CPU time at the step's start
	t0      int64  // start of the current measurement window
	// State of the operations in ops.go.
	affinity   []int  // set_affinity's CPUs; nil: none set
	allowed    []int  // CPUs the worker was allowed during the window
	frozenBase uint64 // frozen cgroup: CPU time at the window's start
	policy     int    // set_policy's policy, when policyName is set
	policyName string
}

type rtCgroup struct {
	name    string
	dir     string
	cpus    []int
	weight  int
	work    scenario.Work
	workers []*rtWorker
	conf    []int // cpuset.cpus as written; nil: never written (inherited)
	frozen  bool  // cgroup.freeze is 1
	parent  bool  // controllers enabled for children (nested cgroups)
}

type runner struct {
	e         *env
	sc        *scenario.Scenario
	topo      *scenario.Topology
	hold      time.Duration
	self      string
	extraEnv  map[string]string
	cgs       map[string]*rtCgroup
	order     []string
	pending   map[string]bool // ping-pong cgroups waiting for their partner
	nextID    int
	nextProg  uint32
	killSched func(syscall.Signal) error
	died      <-chan string
	diedWhy   string
	start     int64
	outs      sync.WaitGroup
	rng       *rand.Rand // set_affinity random: a fixed seed, so runs repeat
}

func writeFile(path, val string) error {
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("write %q to %s: %w", val, path, err)
	}
	return nil
}

func newRunner(e *env, p *plan, topo *scenario.Topology) (*runner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the init's own binary: %w", err)
	}
	for _, c := range []string{"+cpuset", "+cpu"} {
		if err := writeFile("/sys/fs/cgroup/cgroup.subtree_control", c); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(CgroupRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", CgroupRoot, err)
	}
	for _, c := range []string{"+cpuset", "+cpu"} {
		if err := writeFile(CgroupRoot+"/cgroup.subtree_control", c); err != nil {
			return nil, err
		}
	}
	return &runner{e: e, sc: p.sc, topo: topo, hold: p.hold, self: self, extraEnv: p.cfg.Env,
		cgs: map[string]*rtCgroup{}, pending: map[string]bool{}, rng: rand.New(rand.NewPCG(1, 17))}, nil
}

func (r *runner) resolve(spec string) ([]int, error) {
	cs, err := scenario.ParseCpuset(spec)
	if err != nil {
		return nil, err
	}
	return cs.Resolve(r.topo)
}

func (r *runner) addCgroup(c scenario.Cgroup) error {
	cpus, err := r.resolve(c.Cpuset)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c.Name, err)
	}
	if err := r.ensureParents(c.Name); err != nil {
		return err
	}
	dir := filepath.Join(CgroupRoot, c.Name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	if err := writeFile(dir+"/cpuset.cpus", cpulist.Format(cpus)); err != nil {
		return err
	}
	if err := writeFile(dir+"/cpu.weight", strconv.Itoa(c.EffectiveWeight())); err != nil {
		return err
	}
	cg := &rtCgroup{name: c.Name, dir: dir, cpus: cpus, conf: cpus, weight: c.EffectiveWeight(), work: c.Work}
	r.cgs[c.Name] = cg
	r.order = append(r.order, c.Name)
	switch c.Work.Type {
	case scenario.WorkPayload:
		for i := 0; i < c.Workers; i++ {
			if err := r.spawnPayload(cg); err != nil {
				return err
			}
		}
	case scenario.WorkFutexFanOut, scenario.WorkFanOutCompute, scenario.WorkMutexContention:
		g := c.Work.GroupSize()
		for i := 0; i < c.Workers/g; i++ {
			if err := r.spawnGroup(cg, g); err != nil {
				return err
			}
		}
	case scenario.WorkPingPong, scenario.WorkPipeIO, scenario.WorkFutexPingPong, scenario.WorkCachePipe:
		if c.Work.PairWith == "" {
			for i := 0; i < c.Workers/2; i++ {
				if err := r.spawnPair(cg, cg); err != nil {
					return err
				}
			}
			break
		}
		peer, ok := r.cgs[c.Work.PairWith]
		if !ok || !r.pending[peer.name] {
			r.pending[c.Name] = true
			cg.workers = make([]*rtWorker, 0, c.Workers)
			break
		}
		delete(r.pending, peer.name)
		for i := 0; i < c.Workers; i++ {
			if err := r.spawnPair(peer, cg); err != nil {
				return err
			}
		}
	default:
		for i := 0; i < c.Workers; i++ {
			if _, err := r.spawnWorker(cg, WorkerSpec{Work: c.Work}, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// sharedPage creates the page that the workers of a futex pair or group
// map: a futex word and a timestamp (see pkg/workload).
func sharedPage() (*os.File, error) {
	fd, err := unix.MemfdCreate("ktstr-futex", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for a futex page: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ktstr-futex")
	if err := f.Truncate(4096); err != nil {
		f.Close()
		return nil, fmt.Errorf("size the futex page: %w", err)
	}
	return f, nil
}

// spawnGroup starts n workers of cg's work sharing one futex page: a
// fan-out group (index 0 is the messenger) or mutex contenders.
func (r *runner) spawnGroup(cg *rtCgroup, n int) error {
	f, err := sharedPage()
	if err != nil {
		return err
	}
	defer f.Close()
	for i := 0; i < n; i++ {
		if _, err := r.spawnWorker(cg, WorkerSpec{Work: cg.work, Index: i}, f, f); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) spawnPair(a, b *rtCgroup) error {
	if a.work.Mode == "futex" || a.work.Type == scenario.WorkFutexPingPong {
		// One shared page: a futex word saying whose turn it is and the
		// sender's timestamp, mapped by both workers.
		f, err := sharedPage()
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := r.spawnWorker(a, WorkerSpec{Work: a.work, Initiator: true}, f, f); err != nil {
			return err
		}
		_, err = r.spawnWorker(b, WorkerSpec{Work: b.work}, f, f)
		return err
	}
	abR, abW, err := os.Pipe()
	if err != nil {
		return err
	}
	baR, baW, err := os.Pipe()
	if err != nil {
		abR.Close()
		abW.Close()
		return err
	}
	defer func() {
		for _, f := range []*os.File{abR, abW, baR, baW} {
			f.Close()
		}
	}()
	if _, err := r.spawnWorker(a, WorkerSpec{Work: a.work, Initiator: true}, baR, abW); err != nil {
		return err
	}
	_, err = r.spawnWorker(b, WorkerSpec{Work: b.work}, abR, baW)
	return err
}

func openCgroupFD(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	return fd, nil
}

func (r *runner) spawnWorker(cg *rtCgroup, spec WorkerSpec, peerRd, peerWr *os.File) (*rtWorker, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cgfd := -1
	if cg.dir != "" { // tests on the host run workers without a cgroup
		if cgfd, err = openCgroupFD(cg.dir); err != nil {
			return nil, err
		}
		defer unix.Close(cgfd)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	cmd := exec.Command(r.self, WorkerArg, string(js))
	cmd.Args[0] = "ktstr-worker"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ctlR, repW, os.Stderr
	if peerRd != nil {
		cmd.ExtraFiles = []*os.File{peerRd, peerWr}
	}
	cmd.Env = []string{"GOMAXPROCS=2"}
	if cgfd >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	}
	err = cmd.Start()
	ctlR.Close()
	repW.Close()
	if err != nil {
		ctlW.Close()
		repR.Close()
		return nil, fmt.Errorf("start %s worker in cgroup %s: %w", spec.Work.Type, cg.name, err)
	}
	w := &rtWorker{id: r.nextID, cg: cg, work: spec.Work, cmd: cmd, pid: cmd.Process.Pid, ctl: ctlW,
		reports: make(chan workerReport, 8), exited: make(chan struct{}), t0: nanotime()}
	r.nextID++
	cg.workers = append(cg.workers, w)
	go func() {
		defer close(w.reports)
		sc := bufio.NewScanner(repR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rep workerReport
			if json.Unmarshal(sc.Bytes(), &rep) == nil {
				w.reports <- rep
			}
		}
		repR.Close()
	}()
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

func (r *runner) spawnPayload(cg *rtCgroup) error {
	cgfd, err := openCgroupFD(cg.dir)
	if err != nil {
		return err
	}
	defer unix.Close(cgfd)
	argv := cg.work.Argv
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = baseEnv(r.extraEnv)
	cmd.Dir = "/tmp"
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	prog := wire.ProgramPayloadBase + r.nextProg
	if err := startCaptured(r.e, cmd, prog, &r.outs); err != nil {
		return fmt.Errorf("start payload %s in cgroup %s: %w", argv[0], cg.name, err)
	}
	r.nextProg++
	w := &rtWorker{id: r.nextID, cg: cg, work: cg.work, cmd: cmd, pid: cmd.Process.Pid, payload: true,
		exited: make(chan struct{}), t0: nanotime()}
	r.nextID++
	r.e.logf("payload %d (%s) started as pid %d in cgroup %s; its output is program %d", w.id, argv[0], w.pid, cg.name, prog)
	cg.workers = append(cg.workers, w)
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	return nil
}

func (w *rtWorker) stop() {
	if w.ctl != nil {
		w.ctl.Close()
	}
	_ = w.cmd.Process.Kill()
	select {
	case <-w.exited:
	case <-time.After(2 * time.Second):
	}
}

func (r *runner) removeCgroup(name string) error {
	cg := r.cgs[name]
	for _, w := range cg.workers {
		w.stop()
	}
	delete(r.cgs, name)
	r.order = slices.DeleteFunc(r.order, func(n string) bool { return n == name })
	var err error
	for i := 0; i < 20; i++ {
		if err = os.Remove(cg.dir); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", name, err)
}

func (r *runner) applyOp(o scenario.Op) (wire.StimulusOp, error) {
	so := wire.StimulusOp{Op: o.Op, Cgroup: o.Cgroup}
	switch o.Op {
	case scenario.OpAddCgroup:
		so.Cgroup = o.Add.Name
		so.Detail = describeCgroup(*o.Add)
		return so, r.addCgroup(*o.Add)
	case scenario.OpRemoveCgroup:
		return so, r.removeCgroup(o.Cgroup)
	case scenario.OpSetCpuset:
		cg := r.cgs[o.Cgroup]
		cpus, err := r.resolve(o.Cpuset)
		if err != nil {
			return so, err
		}
		so.Detail = o.Cpuset + " = " + cpulist.Format(cpus)
		if err := writeFile(cg.dir+"/cpuset.cpus", cpulist.Format(cpus)); err != nil {
			return so, err
		}
		cg.cpus, cg.conf = cpus, cpus
	case scenario.OpSetWeight:
		cg := r.cgs[o.Cgroup]
		so.Detail = "weight " + strconv.Itoa(o.Weight)
		if err := writeFile(cg.dir+"/cpu.weight", strconv.Itoa(o.Weight)); err != nil {
			return so, err
		}
		cg.weight = o.Weight
	case scenario.OpMoveWorkers:
		from, to := r.cgs[o.Cgroup], r.cgs[o.To]
		n := o.Count
		if n == 0 || n > len(from.workers) {
			n = len(from.workers)
		}
		so.Detail = fmt.Sprintf("%d workers to %s", n, o.To)
		move := from.workers[len(from.workers)-n:]
		for _, w := range move {
			if err := writeFile(to.dir+"/cgroup.procs", strconv.Itoa(w.pid)); err != nil {
				return so, err
			}
			w.cg = to
		}
		from.workers = from.workers[:len(from.workers)-n]
		to.workers = append(to.workers, move...)
	case scenario.OpKillScheduler:
		sig := map[string]syscall.Signal{"": syscall.SIGKILL, "KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM,
			"INT": syscall.SIGINT, "SEGV": syscall.SIGSEGV}[o.Signal]
		so.Detail = unix.SignalName(sig)
		if r.killSched == nil {
			r.e.logf("kill_scheduler: no scheduler in this run (EEVDF baseline): nothing to kill")
			return so, nil
		}
		return so, r.killSched(sig)
	default:
		return r.applyMoreOp(o)
	}
	return so, nil
}

func describeCgroup(c scenario.Cgroup) string {
	cs := c.Cpuset
	if cs == "" {
		cs = "all"
	}
	return fmt.Sprintf("cpuset=%s weight=%d workers=%d work=%s", cs, c.EffectiveWeight(), c.Workers, c.Work.Type)
}

func (r *runner) all() []*rtWorker {
	var out []*rtWorker
	for _, n := range r.order {
		out = append(out, r.cgs[n].workers...)
	}
	return out
}

// awaitHello waits until every new worker has said hello (started and
// listening), so that the step's measurement windows start together.
func (r *runner) awaitHello(timeout time.Duration) {
	deadline := time.After(timeout)
	for _, w := range r.all() {
		if w.payload || w.hello || w.cg.frozen {
			continue
		}
		select {
		case _, ok := <-w.reports:
			w.hello = ok
			if !ok {
				r.e.logf("worker %d (pid %d) exited before it started", w.id, w.pid)
			}
		case <-deadline:
			r.e.logf("worker %d (pid %d) did not start within %v", w.id, w.pid, timeout)
			return
		}
	}
}

// collect asks every worker for a report and waits for all of them.
func (r *runner) collect(timeout time.Duration) map[*rtWorker]*wire.WorkerMetrics {
	ws := r.all()
	res := make(map[*rtWorker]*wire.WorkerMetrics, len(ws))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range ws {
		if w.payload || w.cg.frozen {
			continue
		}
		w.sent++
		if _, err := w.ctl.Write([]byte{'R'}); err != nil {
			continue
		}
		wg.Add(1)
		go func(w *rtWorker) {
			defer wg.Done()
			deadline := time.After(timeout)
			for {
				select {
				case rep, ok := <-w.reports:
					if !ok {
						return
					}
					if rep.Seq >= w.sent {
						m := rep.Metrics
						mu.Lock()
						res[w] = &m
						mu.Unlock()
						return
					}
				case <-deadline:
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return res
}

func procCPUNS(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return (ut + st) * 1e7, true // USER_HZ is 100 on Linux
}

func payloadCPU(w *rtWorker) uint64 {
	select {
	case <-w.exited:
		if ps := w.cmd.ProcessState; ps != nil {
			return uint64(ps.UserTime() + ps.SystemTime())
		}
	default:
	}
	v, _ := procCPUNS(w.pid)
	return v
}

func (r *runner) maxSleep() time.Duration {
	var d time.Duration
	for _, w := range r.all() {
		d = max(d, time.Duration(w.work.MaxBlock())*time.Millisecond)
	}
	return d
}

// run executes the scenario's steps and returns the workload checks.
func (r *runner) run() ([]wire.CheckResult, error) {
	var checks []wire.CheckResult
	r.start = nanotime()
	for i, st := range r.sc.Steps {
		var ops []wire.StimulusOp
		for _, c := range st.Cgroups {
			ops = append(ops, wire.StimulusOp{Op: scenario.OpAddCgroup, Cgroup: c.Name, Detail: describeCgroup(c)})
			if err := r.addCgroup(c); err != nil {
				return checks, fmt.Errorf("step %d: %w", i, err)
			}
		}
		r.refreshCpus()
		var repeats []*repeater
		for _, o := range st.Ops {
			so, err := r.applyAt(o, 0)
			ops = append(ops, so)
			if err != nil {
				return checks, fmt.Errorf("step %d: %s: %w", i, o.Op, err)
			}
			if o.EveryMS > 0 {
				every := time.Duration(o.EveryMS) * time.Millisecond
				repeats = append(repeats, &repeater{op: o, every: every, next: time.Now().Add(every), n: 1})
			}
		}
		r.awaitHello(5 * time.Second)
		hold := st.Hold()
		if r.hold > 0 {
			hold = r.hold
		}
		nw := 0
		for _, n := range r.order {
			nw += len(r.cgs[n].workers)
		}
		r.e.send(wire.Stimulus{Step: i, Name: st.Name, ElapsedMS: uint64(nanotime()-r.start) / 1e6,
			HoldMS: uint64(hold.Milliseconds()), Ops: ops, Cgroups: len(r.order), Workers: nw})
		// Start every worker's measurement window now.
		r.collect(time.Second)
		now := nanotime()
		for _, w := range r.all() {
			w.t0 = now
			if w.payload {
				w.cpuBase = payloadCPU(w)
			}
		}
		r.startWindow()
		why, err := r.holdStep(hold, repeats)
		if err != nil {
			return checks, fmt.Errorf("step %d: %w", i, err)
		}
		for _, rp := range repeats {
			r.e.logf("step %d: %s %s applied %d times (every %v)", i, rp.op.Op, rp.op.Cgroup, rp.n, rp.every)
		}
		if why != "" {
			r.diedWhy = why
			r.e.logf("step %d: %s: ending the scenario early", i, why)
		}
		reps := r.collect(reportTimeout + r.maxSleep())
		end := nanotime()
		for _, n := range r.order {
			cg := r.cgs[n]
			if cg.frozen {
				ms, c := r.frozenSample(i, cg, end)
				for _, m := range ms {
					r.e.send(m)
				}
				r.e.send(wire.CgroupMetrics{Step: i, Cgroup: cg.name, Workers: len(ms), Cpuset: cg.cpus, Weight: cg.weight})
				if r.sc.Checks.Enabled(CheckFrozen) {
					r.e.send(c)
					if !c.Pass {
						r.e.logf("check %s failed on cgroup %s at step %d: %s", c.Name, c.Cgroup, i, c.Detail)
					}
					checks = append(checks, c)
				}
				continue
			}
			sample := CgroupSample{Name: cg.name, Cpuset: cg.cpus, Weight: cg.weight}
			for _, w := range cg.workers {
				sample.Allowed = append(sample.Allowed, w.allowed)
				m := wire.WorkerMetrics{}
				switch {
				case w.payload:
					cpuNow := payloadCPU(w)
					m.CPUTimeNS = cpuNow - min(w.cpuBase, cpuNow)
					m.WallNS = uint64(end - w.t0)
					m.CPUs = []int{}
					m.MaxGapCPU = -1
					select {
					case <-w.exited:
						c := w.cmd.ProcessState.ExitCode()
						m.ExitCode = &c
					default:
					}
				case reps[w] != nil:
					m = *reps[w]
				default:
					m.WallNS = uint64(end - w.t0)
					m.MaxGapNS = m.WallNS
					m.MaxGapCPU = -1
					m.CPUs = []int{}
					r.e.logf("step %d: worker %d (pid %d, cgroup %s) sent no report: counted as stuck for %d ms", i, w.id, w.pid, cg.name, m.MaxGapNS/1e6)
				}
				m.Step, m.Cgroup, m.Worker, m.PID, m.Work = i, cg.name, w.id, w.pid, w.work.Type
				sample.Workers = append(sample.Workers, m)
			}
			cm, res := Evaluate(i, &sample, r.sc.Checks)
			if pc := policyCheck(i, cg); pc != nil && r.sc.Checks.Enabled(CheckPolicy) {
				res = append(res, *pc)
			}
			for _, m := range sample.Workers {
				r.e.send(m)
			}
			r.e.send(cm)
			for _, c := range res {
				r.e.send(c)
				if !c.Pass {
					r.e.logf("check %s failed on cgroup %s at step %d: %s (threshold %g, observed %g)", c.Name, c.Cgroup, i, c.Detail, c.Threshold, c.Observed)
				}
			}
			checks = append(checks, res...)
		}
		if r.diedWhy != "" {
			break
		}
	}
	return checks, nil
}

func (r *runner) teardown() {
	var wg sync.WaitGroup
	for _, w := range r.all() {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop() }()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { r.outs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// execute runs the scheduler and the scenario and returns the exit code.
func execute(e *env, p *plan, topo *scenario.Topology) int {
	out := &RunOutcome{}
	r, err := newRunner(e, p, topo)
	if err != nil {
		e.logf("set up cgroups: %v", err)
		return ExitInternal
	}
	// The task-stall scan watches from before the scheduler starts (a
	// stall while it attaches counts too) to the end of the scenario.
	var stallWatch *taskStallWatch
	if p.sc.Checks.Enabled(CheckTaskStall) {
		stallWatch = startTaskStallWatch(e, p.sc.Checks.TaskStallThreshold())
	}
	endStallWatch := func() {
		if stallWatch == nil {
			return
		}
		// Failures were sent as they were found; a pass is sent now.
		c, sent := stallWatch.finish()
		stallWatch = nil
		if !sent {
			e.send(c)
		}
		out.Checks = append(out.Checks, c)
		if os.Getpid() == 1 {
			if err := NormalThreads(1); err != nil {
				e.logf("cannot put the init back to SCHED_OTHER: %v", err)
			}
		}
	}
	defer endStallWatch() // the early returns below
	probes := &probeRun{e: e}
	if p.probe {
		probes = startProbes(e, p.probeFuncs) // before the scheduler: its attach is in the timeline
		defer probes.stop()
	}
	var sp *schedProc
	died := make(chan string, 1)
	stopWatch := make(chan struct{})
	if p.sched != nil {
		kw := startKmsg(e)
		e.phase(wire.PhaseSchedulerStarting, strings.TrimSpace(p.sched.Name+" "+strings.Join(p.sched.Args, " ")))
		if p.kthreaddCPU >= 0 {
			restore := pinKthreadd(e, p.kthreaddCPU, topo.Online)
			defer restore()
		}
		t0 := time.Now()
		schedBoot := int64(bootNS()) // CLOCK_BOOTTIME, as a BPF program's load time
		sp, err = startScheduler(e, p.sched, p.cfg.Env, kw)
		if err != nil {
			e.phase(wire.PhaseSchedulerDied, err.Error())
			e.send(wire.CheckResult{Name: CheckSchedDied, Step: checkScenarioWideID, Observed: 1, Unit: "exits", Detail: err.Error()})
			return ExitSchedulerDied
		}
		probes.watchOps() // its callbacks, as it loads them
		ops, err := sp.waitAttach(p.attachTimeout, probes.busy)
		if err != nil {
			waited := time.Since(t0)
			if errors.Is(err, errDiedEarly) {
				x := sp.exitFrame()
				e.phase(wire.PhaseSchedulerDied, err.Error())
				e.send(x)
				e.send(wire.CheckResult{Name: CheckSchedDied, Step: checkScenarioWideID, Observed: 1, Unit: "exits", Detail: describeExit(err.Error(), x)})
				return ExitSchedulerDied
			}
			e.phase(wire.PhaseSchedulerNotAttached, err.Error())
			e.send(wire.CheckResult{Name: CheckNotAttached, Step: checkScenarioWideID, Threshold: float64(p.attachTimeout.Milliseconds()),
				Observed: float64(waited.Milliseconds()), Unit: "ms", Detail: err.Error()})
			_ = sp.cmd.Process.Kill()
			select {
			case <-sp.exited:
			case <-time.After(2 * time.Second):
			}
			return ExitNotAttached
		}
		attachMS := time.Since(t0).Milliseconds()
		probes.opsLoaded() // all its callbacks are loaded now: probe them before the scenario
		if p.kthreaddCPU >= 0 {
			pinKthreadd(e, -1, topo.Online)
		}
		e.phase(wire.PhaseSchedulerAttached, fmt.Sprintf("ops %s after %d ms", ops, attachMS))
		if !OpsMatches(ops, p.sched.Name) {
			e.logf("sched_ext root ops is %q, which does not look like %q", ops, p.sched.Name)
		}
		out.Checks = append(out.Checks, wire.CheckResult{Name: CheckNotAttached, Pass: true, Step: checkScenarioWideID,
			Threshold: float64(p.attachTimeout.Milliseconds()), Observed: float64(attachMS), Unit: "ms", Detail: "attached as " + ops})
		e.send(out.Checks[len(out.Checks)-1])
		if st, err := CollectBPFProgStats(p.sched.Name, sp.cmd.Process.Pid, schedBoot); err != nil {
			e.logf("BPF program stats: %v", err)
		} else {
			e.send(st)
		}
		go sp.watch(died, stopWatch)
		r.died = died
		r.killSched = func(s syscall.Signal) error { return sp.cmd.Process.Signal(s) }
	} else {
		e.logf("no scheduler packed: EEVDF baseline run")
	}
	e.phase(wire.PhaseScenarioStart, p.scName)
	checks, runErr := r.run()
	out.Checks = append(out.Checks, checks...)
	endStallWatch()
	e.phase(wire.PhaseScenarioEnd, p.scName)
	if runErr != nil {
		e.logf("scenario %s: %v", p.scName, runErr)
		out.Internal = true
	}
	close(stopWatch)
	if sp != nil && r.diedWhy == "" {
		select {
		case why := <-died:
			r.diedWhy = why
		default:
		}
	}
	r.teardown()
	if sp != nil {
		res := wire.CheckResult{Name: CheckSchedDied, Step: checkScenarioWideID, Unit: "exits"}
		if r.diedWhy != "" {
			x := sp.exitFrame()
			e.phase(wire.PhaseSchedulerDied, r.diedWhy)
			e.send(x)
			res.Observed = 1
			res.Detail = describeExit(r.diedWhy, x)
			out.SchedulerDied = true
		} else {
			sp.stop()
			x := sp.exitFrame()
			e.send(x)
			res.Pass = true
			res.Detail = "alive until the scenario ended; then " + x.Reason
		}
		e.send(res)
		out.Checks = append(out.Checks, res)
	}
	return out.ExitCode()
}

func describeExit(why string, x wire.SchedExit) string {
	s := why + ": " + x.Reason
	if x.Message != "" {
		s += ": " + x.Message
	}
	if x.Signal != "" {
		s += " (process killed by " + x.Signal + ")"
	} else if x.ExitCode != nil {
		s += fmt.Sprintf(" (process exit status %d)", *x.ExitCode)
	}
	return s
}

// pinKthreadd sets kthreadd's (PID 2) CPU affinity to cpu, or to every
// online CPU when cpu < 0, and returns a function that restores the latter.
func pinKthreadd(e *env, cpu int, online []int) func() {
	var set unix.CPUSet
	if cpu >= 0 {
		set.Set(cpu)
	} else {
		for _, c := range online {
			set.Set(c)
		}
	}
	if err := unix.SchedSetaffinity(2, &set); err != nil {
		e.logf("set kthreadd affinity: %v", err)
	} else if cpu >= 0 {
		e.logf("kthreadd pinned to CPU %d while the scheduler attaches (ktstr.kthreadd_cpu)", cpu)
	}
	return func() {
		if cpu >= 0 {
			pinKthreadd(e, -1, online)
		}
	}
}
