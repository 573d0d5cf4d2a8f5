package guest

import (
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"math"
	"slices"
	"time"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Exit codes of the guest init, carried in the guest-exit frame. They are
// documented in man/ktstr-init.1.
const (
	ExitPass            = 0 // every check passed
	ExitCheckFailed     = 1 // a workload check (starvation, fairness, isolation, payload) failed
	ExitNotAttached     = 3 // the scheduler did not attach within the attach timeout
	ExitSchedulerDied   = 4 // the scheduler exited or sched_ext disabled it before the scenario ended
	ExitBadConfig       = 5 // the run configuration, scenario or command-line override is invalid
	ExitInternal        = 6 // the init itself failed (mounts, port, cgroups, spawning workers)
	ExitNoPortNoFrames  = 7 // no "ktstr" port: nothing could be reported (console only)
	checkScenarioWideID = -1
)

// MinFairnessWindow is the shortest measurement window the fairness check
// judges: shorter windows (a step cut short by a scheduler death) are too
// noisy to call unfair.
const MinFairnessWindow = time.Second

// Check names.
const (
	CheckStarvation   = "starvation"
	CheckFairness     = "fairness"
	CheckIsolation    = "isolation"
	CheckPayload      = "payload"
	CheckSchedDied    = "scheduler_died"
	CheckNotAttached  = "scheduler_not_attached"
	CheckScenarioRuns = "scenario"
)

// CgroupSample is what Evaluate needs about one cgroup over one step.
type CgroupSample struct {
	Name    string
	Cpuset  []int
	Weight  int
	Workers []wire.WorkerMetrics
	// Allowed, when set, holds for each worker (same index) the CPUs it
	// was allowed during the window (cpuset narrowed by affinity, widened
	// by changes during the step); isolation judges it instead of Cpuset.
	Allowed [][]int
}

// Spread returns (max-min)/mean of vals in percent; 0 for fewer than two
// values or a zero mean.
func Spread(vals []uint64) float64 {
	if len(vals) < 2 {
		return 0
	}
	lo, hi := vals[0], vals[0]
	var sum float64
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
		sum += float64(v)
	}
	mean := sum / float64(len(vals))
	if mean == 0 {
		return 0
	}
	return float64(hi-lo) / mean * 100
}

// OffCpuset lists the CPUs in used that are not in cpuset.
func OffCpuset(used, cpuset []int) []int {
	var out []int
	for _, c := range used {
		if !slices.Contains(cpuset, c) {
			out = append(out, c)
		}
	}
	return out
}

// Evaluate summarises one cgroup over one step and runs the workload checks
// that apply to it. It fills each worker's OffCpuset. The fairness spread
// is Spread over the CPU shares (CPU time / wall time) of the cgroup's
// workers of one work type (spin, yield, bursty; the largest spread of
// those types counts).
func Evaluate(step int, cg *CgroupSample, chk scenario.Checks) (wire.CgroupMetrics, []wire.CheckResult) {
	m := wire.CgroupMetrics{Step: step, Cgroup: cg.Name, Workers: len(cg.Workers), Cpuset: cg.Cpuset, Weight: cg.Weight}
	used := map[int]bool{}
	byWork := map[string][]uint64{}
	minWall := uint64(math.MaxUint64)
	var starved []string
	var maxGapAll uint64
	var off []int
	payloadFail := ""
	for i := range cg.Workers {
		w := &cg.Workers[i]
		for _, c := range w.CPUs {
			used[c] = true
		}
		allowed := cg.Cpuset
		if i < len(cg.Allowed) && cg.Allowed[i] != nil {
			allowed = cg.Allowed[i]
		}
		w.OffCpuset = OffCpuset(w.CPUs, allowed)
		for _, c := range w.OffCpuset {
			if !slices.Contains(off, c) {
				off = append(off, c)
			}
		}
		m.Iterations += w.Iterations
		m.CPUTimeNS += w.CPUTimeNS
		m.Migrations += w.Migrations
		m.WakeLatP99NS = max(m.WakeLatP99NS, w.WakeLatP99NS)
		if w.Work == scenario.WorkPayload {
			if w.ExitCode != nil && *w.ExitCode != 0 && payloadFail == "" {
				payloadFail = fmt.Sprintf("payload worker %d (pid %d) exited with status %d", w.Worker, w.PID, *w.ExitCode)
			}
			continue
		}
		m.MaxGapNS = max(m.MaxGapNS, w.MaxGapNS)
		maxGapAll = max(maxGapAll, w.MaxGapNS)
		if w.Iterations == 0 || time.Duration(w.MaxGapNS) > chk.StarvationThreshold() {
			starved = append(starved, fmt.Sprintf("worker %d (pid %d) %s: %d iterations, stuck %d ms on cpu %d",
				w.Worker, w.PID, w.Work, w.Iterations, w.MaxGapNS/1e6, w.MaxGapCPU))
		}
		if (scenario.Work{Type: w.Work}).FairnessApplies() {
			// CPU time per wall time, so that windows that started a few
			// milliseconds apart (a worker serves the reset when it next
			// runs) compare fairly.
			share := uint64(0)
			if w.WallNS > 0 {
				share = uint64(float64(w.CPUTimeNS) / float64(w.WallNS) * 1e9)
			}
			byWork[w.Work] = append(byWork[w.Work], share)
			minWall = min(minWall, w.WallNS)
		}
	}
	m.CPUsUsed = len(used)
	var spreadWork string
	for work, vals := range byWork {
		if s := Spread(vals); s > m.SpreadPct || spreadWork == "" {
			m.SpreadPct, spreadWork = max(m.SpreadPct, s), work
		}
	}
	m.SpreadPct = math.Round(m.SpreadPct*10) / 10

	var res []wire.CheckResult
	base := wire.CheckResult{Cgroup: cg.Name, Step: step}
	hasMeasured := false
	for _, w := range cg.Workers {
		if w.Work != scenario.WorkPayload {
			hasMeasured = true
		}
	}
	if chk.Enabled(CheckStarvation) && hasMeasured {
		r := base
		r.Name, r.Unit = CheckStarvation, "ms"
		r.Threshold = float64(chk.StarvationThreshold().Milliseconds())
		r.Observed = float64(maxGapAll / 1e6)
		r.Pass = len(starved) == 0
		if !r.Pass {
			r.Detail = starved[0]
			if len(starved) > 1 {
				r.Detail += fmt.Sprintf(" (and %d more)", len(starved)-1)
			}
		}
		res = append(res, r)
	}
	if chk.Enabled(CheckFairness) && len(byWork[spreadWork]) >= 2 && time.Duration(minWall) >= MinFairnessWindow {
		r := base
		r.Name, r.Unit = CheckFairness, "%"
		r.Threshold = chk.SpreadThreshold()
		r.Observed = m.SpreadPct
		r.Pass = m.SpreadPct <= r.Threshold
		r.Detail = fmt.Sprintf("CPU-time spread of %d %s workers on %d CPUs", len(byWork[spreadWork]), spreadWork, m.CPUsUsed)
		res = append(res, r)
	}
	if chk.Enabled(CheckIsolation) && hasMeasured {
		slices.Sort(off)
		r := base
		r.Name, r.Unit = CheckIsolation, "cpus"
		r.Observed = float64(len(off))
		r.Pass = len(off) == 0
		if !r.Pass {
			r.Detail = fmt.Sprintf("workers ran on CPUs %s outside cpuset %s", cpulist.Format(off), cpulist.Format(cg.Cpuset))
			if len(cg.Allowed) > 0 {
				r.Detail = fmt.Sprintf("workers ran on CPUs %s outside the CPUs their cpuset and affinity allowed (cpuset now %s)", cpulist.Format(off), cpulist.Format(cg.Cpuset))
			}
		}
		res = append(res, r)
	}
	if chk.Enabled(CheckPayload) && payloadFail != "" {
		r := base
		r.Name, r.Unit = CheckPayload, "status"
		r.Observed, r.Detail = 1, payloadFail
		res = append(res, r)
	}
	res = append(res, evaluateWorkload(step, cg, &m, chk)...)
	return m, res
}

// RunOutcome is what decides the guest's exit code.
type RunOutcome struct {
	BadConfig     bool
	Internal      bool
	NotAttached   bool
	SchedulerDied bool
	Checks        []wire.CheckResult
}

// ExitCode maps an outcome to the documented exit code; the most specific
// cause wins: internal error, bad config, not attached, scheduler died,
// failed check, pass.
func (o *RunOutcome) ExitCode() int {
	switch {
	case o.Internal:
		return ExitInternal
	case o.BadConfig:
		return ExitBadConfig
	case o.NotAttached:
		return ExitNotAttached
	case o.SchedulerDied:
		return ExitSchedulerDied
	}
	for _, c := range o.Checks {
		if !c.Pass {
			return ExitCheckFailed
		}
	}
	return ExitPass
}
