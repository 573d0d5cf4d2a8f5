package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

// Checks that go with the operations of this file.
const (
	CheckFrozen = "frozen" // a frozen cgroup's workers used no CPU while frozen
	CheckPolicy = "policy" // workers still have the policy set_policy gave them
)

// freezeTimeout bounds the wait for cgroup.events to say the freezer
// reached the requested state.
const freezeTimeout = 5 * time.Second

// ensureParents creates the missing ancestors of a nested cgroup (as
// worker-less cgroups the scenario can still address) and enables the
// cpuset and cpu controllers for their children.
func (r *runner) ensureParents(name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		cg, ok := r.cgs[p]
		if !ok {
			dir := filepath.Join(CgroupRoot, p)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return fmt.Errorf("create parent cgroup %s: %w", p, err)
			}
			cg = &rtCgroup{name: p, dir: dir, weight: scenario.DefaultWeight}
			r.cgs[p] = cg
			r.order = append(r.order, p)
		}
		if !cg.parent {
			for _, c := range []string{"+cpuset", "+cpu"} {
				if err := writeFile(cg.dir+"/cgroup.subtree_control", c); err != nil {
					return err
				}
			}
			cg.parent = true
		}
	}
	return nil
}

// tasks lists the thread ids of a process (just pid when /proc says
// nothing, e.g. it exited).
func tasks(pid int) []int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return []int{pid}
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// schedRuntimeNS sums the CPU time the kernel charged to every thread of
// pid (/proc/PID/task/TID/schedstat, first field, in ns).
func schedRuntimeNS(pid int) (uint64, bool) {
	var sum uint64
	ok := false
	for _, t := range tasks(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, t))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	if !ok {
		return procCPUNS(pid)
	}
	return sum, true
}

// allowedOf is the set of CPUs a worker may run on: its cgroup's
// effective cpuset, narrowed by its affinity when the two intersect (the
// kernel keeps a task's requested affinity across cpuset changes only
// while it intersects the cpuset).
func allowedOf(w *rtWorker) []int {
	if w.affinity == nil {
		return w.cg.cpus
	}
	var both []int
	for _, c := range w.cg.cpus {
		if slices.Contains(w.affinity, c) {
			both = append(both, c)
		}
	}
	if len(both) == 0 {
		return w.cg.cpus
	}
	return both
}

func union(a, b []int) []int {
	out := slices.Clone(a)
	for _, c := range b {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// refreshCpus re-reads every cgroup's effective cpuset (a parent's change
// narrows its children) and widens each worker's set of CPUs allowed in
// the current window.
func (r *runner) refreshCpus() {
	for _, n := range r.order {
		cg := r.cgs[n]
		if s, err := readTrim(cg.dir + "/cpuset.cpus.effective"); err == nil {
			if cpus, err := cpulist.Parse(s); err == nil && len(cpus) > 0 {
				cg.cpus = cpus
			}
		}
		for _, w := range cg.workers {
			w.allowed = union(w.allowed, allowedOf(w))
		}
	}
}

// startWindow resets the per-window state of the operations: the CPUs a
// worker was allowed, and a frozen worker's CPU time at the start.
func (r *runner) startWindow() {
	for _, w := range r.all() {
		w.allowed = slices.Clone(allowedOf(w))
		if w.cg.frozen {
			w.frozenBase, _ = schedRuntimeNS(w.pid)
		}
	}
}

// applyAt applies the k-th application of o (k = 0 at the step's start):
// a cycle's k-th cpuset, then the cpuset-dependent bookkeeping.
func (r *runner) applyAt(o scenario.Op, k int) (wire.StimulusOp, error) {
	if len(o.Cycle) > 0 {
		o.Cpuset = o.Cycle[k%len(o.Cycle)]
		o.Cycle = nil
	}
	so, err := r.applyOp(o)
	r.refreshCpus()
	return so, err
}

// applyMoreOp runs the operations of scenario/ops.go.
func (r *runner) applyMoreOp(o scenario.Op) (wire.StimulusOp, error) {
	so := wire.StimulusOp{Op: o.Op, Cgroup: o.Cgroup}
	cg := r.cgs[o.Cgroup]
	if cg == nil {
		return so, fmt.Errorf("cgroup %q does not exist", o.Cgroup)
	}
	switch o.Op {
	case scenario.OpClearCpuset:
		// The kernel refuses to empty a populated cpuset (ENOSPC): clear
		// means every CPU of the parent.
		all, err := parentCpus(cg.dir)
		if err != nil {
			return so, err
		}
		so.Detail = "cpuset = parent's " + cpulist.Format(all)
		if err := writeFile(cg.dir+"/cpuset.cpus", cpulist.Format(all)); err != nil {
			return so, err
		}
		cg.conf = all
	case scenario.OpSwapCpusets:
		other := r.cgs[o.With]
		if other == nil {
			return so, fmt.Errorf("cgroup %q does not exist", o.With)
		}
		a, b := cg.conf, other.conf
		var err error
		// A cgroup that never had a cpuset (an implicit parent) uses its
		// parent's CPUs; a populated cpuset cannot be emptied.
		if a == nil {
			if a, err = parentCpus(cg.dir); err != nil {
				return so, err
			}
		}
		if b == nil {
			if b, err = parentCpus(other.dir); err != nil {
				return so, err
			}
		}
		so.Detail = fmt.Sprintf("with %s: %s <-> %s", o.With, cpulist.Format(a), cpulist.Format(b))
		if err := writeFile(cg.dir+"/cpuset.cpus", cpulist.Format(b)); err != nil {
			return so, err
		}
		if err := writeFile(other.dir+"/cpuset.cpus", cpulist.Format(a)); err != nil {
			return so, err
		}
		cg.conf, other.conf = b, a
	case scenario.OpSetAffinity:
		var cpus []int
		var err error
		switch o.Cpuset {
		case scenario.AffinityRandom:
			cpus = r.randomSubset(cg.cpus)
		case "", "all":
			cpus = nil
		default:
			if cpus, err = r.resolve(o.Cpuset); err != nil {
				return so, err
			}
		}
		mask := cpus
		if mask == nil {
			mask = r.topo.Online
		}
		so.Detail = fmt.Sprintf("%s = %s", orAll(o.Cpuset), cpulist.Format(mask))
		var set unix.CPUSet
		for _, c := range mask {
			set.Set(c)
		}
		for _, w := range cg.workers {
			for _, t := range tasks(w.pid) {
				if err := unix.SchedSetaffinity(t, &set); err != nil && !errors.Is(err, unix.ESRCH) {
					return so, fmt.Errorf("set_affinity %s on worker %d (tid %d): %w (does it intersect the cgroup's cpuset %s?)",
						cpulist.Format(mask), w.id, t, err, cpulist.Format(cg.cpus))
				}
			}
			w.affinity = slices.Clone(cpus)
		}
	case scenario.OpSetPolicy:
		pol := scenario.Policies[o.Policy]
		so.Detail = o.Policy
		if o.Priority != 0 {
			so.Detail += " priority " + strconv.Itoa(o.Priority)
		}
		if pol == scenario.Policies["ext"] {
			if _, err := os.Stat("/sys/kernel/sched_ext"); err != nil {
				return so, errors.New("set_policy ext: this kernel has no sched_ext (no /sys/kernel/sched_ext)")
			}
		}
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(pol), Priority: uint32(o.Priority)}
		for _, w := range cg.workers {
			for _, t := range tasks(w.pid) {
				if err := unix.SchedSetAttr(t, &attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
					return so, fmt.Errorf("set_policy %s on worker %d (tid %d): %w", o.Policy, w.id, t, err)
				}
			}
			w.policy, w.policyName = pol, o.Policy
		}
	case scenario.OpFreeze, scenario.OpThaw:
		want := o.Op == scenario.OpFreeze
		so.Detail = fmt.Sprintf("%d workers", len(cg.workers))
		t0 := time.Now()
		if err := setFrozen(cg.dir, want); err != nil {
			return so, err
		}
		so.Detail += fmt.Sprintf(" in %d ms", time.Since(t0).Milliseconds())
		cg.frozen = want
	default:
		return so, fmt.Errorf("unknown op %q", o.Op)
	}
	return so, nil
}

// setFrozen writes cgroup.freeze and waits until cgroup.events reports the
// state reached.
func setFrozen(dir string, frozen bool) error {
	v, want := "0", "frozen 0"
	if frozen {
		v, want = "1", "frozen 1"
	}
	if err := writeFile(dir+"/cgroup.freeze", v); err != nil {
		return err
	}
	deadline := time.Now().Add(freezeTimeout)
	for {
		b, err := os.ReadFile(dir + "/cgroup.events")
		if err != nil {
			return fmt.Errorf("read %s/cgroup.events: %w", dir, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(l) == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: cgroup.events did not say %q within %v", dir, want, freezeTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parentCpus reads the effective CPUs of the cgroup above dir.
func parentCpus(dir string) ([]int, error) {
	p := filepath.Dir(dir) + "/cpuset.cpus.effective"
	s, err := readTrim(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	cpus, err := cpulist.Parse(s)
	if err != nil || len(cpus) == 0 {
		return nil, fmt.Errorf("%s: %q is not a CPU list (%v)", p, s, err)
	}
	return cpus, nil
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

// randomSubset picks a non-empty random subset of cpus.
func (r *runner) randomSubset(cpus []int) []int {
	if len(cpus) == 0 {
		return nil
	}
	for {
		var out []int
		for _, c := range cpus {
			if r.rng.IntN(2) == 1 {
				out = append(out, c)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
}

// repeater is an operation that repeats while a step holds.
type repeater struct {
	op    scenario.Op
	every time.Duration
	next  time.Time
	n     int // applications so far, the first included
}

// hold waits for the step's hold time, applying repeating operations when
// they are due; it returns early, with the reason, when the scheduler dies.
func (r *runner) holdStep(hold time.Duration, reps []*repeater) (string, error) {
	end := time.Now().Add(hold)
	for {
		due := end
		for _, rp := range reps {
			if rp.next.Before(due) {
				due = rp.next
			}
		}
		select {
		case <-time.After(time.Until(due)):
		case why := <-r.died:
			return why, nil
		}
		now := time.Now()
		if !now.Before(end) {
			return "", nil
		}
		for _, rp := range reps {
			if now.Before(rp.next) {
				continue
			}
			if _, err := r.applyAt(rp.op, rp.n); err != nil {
				return "", fmt.Errorf("%s (repetition %d): %w", rp.op.Op, rp.n, err)
			}
			rp.n++
			rp.next = rp.next.Add(rp.every)
			if rp.next.Before(now) { // fell behind: do not burst
				rp.next = now.Add(rp.every)
			}
		}
	}
}

// frozenSample measures a frozen cgroup over the step: no reports (its
// workers cannot answer), only the CPU time the kernel charged them since
// the window started, which must be zero.
func (r *runner) frozenSample(step int, cg *rtCgroup, end int64) ([]wire.WorkerMetrics, wire.CheckResult) {
	res := wire.CheckResult{Name: CheckFrozen, Cgroup: cg.name, Step: step, Unit: "ns", Pass: true}
	var ms []wire.WorkerMetrics
	moved := 0
	for _, w := range cg.workers {
		now, _ := schedRuntimeNS(w.pid)
		d := now - min(now, w.frozenBase)
		m := wire.WorkerMetrics{Step: step, Cgroup: cg.name, Worker: w.id, PID: w.pid, Work: w.work.Type,
			CPUTimeNS: d, WallNS: uint64(end - w.t0), MaxGapCPU: -1, CPUs: []int{}}
		ms = append(ms, m)
		res.Observed = max(res.Observed, float64(d))
		if d > 0 {
			moved++
		}
	}
	if moved > 0 {
		res.Pass = false
		res.Detail = fmt.Sprintf("%d of %d workers used CPU time while their cgroup was frozen", moved, len(cg.workers))
	} else {
		res.Detail = fmt.Sprintf("%d workers used no CPU time while frozen", len(cg.workers))
	}
	return ms, res
}

// policyCheck verifies that every thread of the workers set_policy
// reached still has that policy; nil when no worker of cg had one set.
func policyCheck(step int, cg *rtCgroup) *wire.CheckResult {
	res := &wire.CheckResult{Name: CheckPolicy, Cgroup: cg.name, Step: step, Unit: "threads", Pass: true}
	n := 0
	for _, w := range cg.workers {
		if w.policyName == "" {
			continue
		}
		for _, t := range tasks(w.pid) {
			a, err := unix.SchedGetAttr(t, 0)
			if err != nil {
				continue
			}
			n++
			if int(a.Policy) != w.policy {
				res.Observed++
				if res.Pass {
					res.Detail = fmt.Sprintf("worker %d thread %d has policy %d, set_policy gave it %s (%d)", w.id, t, a.Policy, w.policyName, w.policy)
				}
				res.Pass = false
			}
		}
	}
	if n == 0 {
		return nil
	}
	if res.Pass {
		res.Detail = fmt.Sprintf("%d threads keep their policy", n)
	}
	return res
}
