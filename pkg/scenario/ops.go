package scenario

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/topology"
)

// Operations on running cgroups, beyond the ones in scenario.go.
const (
	OpClearCpuset = "clear_cpuset"  // the cgroup's cpuset becomes every CPU of its parent
	OpSwapCpusets = "swap_cpusets"  // two cgroups exchange cpusets
	OpSetAffinity = "set_affinity"  // sched_setaffinity on every thread of the cgroup's workers
	OpSetPolicy   = "set_policy"    // sched_setattr policy (and priority) of the cgroup's workers
	OpFreeze      = "freeze_cgroup" // cgroup.freeze = 1 (upstream's StopCgroup)
	OpThaw        = "thaw_cgroup"   // cgroup.freeze = 0
)

// AffinityRandom is the set_affinity cpuset that picks a new random,
// non-empty subset of the cgroup's CPUs each time the op applies.
const AffinityRandom = "random"

// Scheduling policies set_policy accepts, with their Linux numbers.
var Policies = map[string]int{
	"other": 0, // SCHED_OTHER (SCHED_NORMAL)
	"fifo":  1, // SCHED_FIFO, priority 1..99
	"rr":    2, // SCHED_RR, priority 1..99
	"batch": 3, // SCHED_BATCH
	"idle":  5, // SCHED_IDLE
	"ext":   7, // SCHED_EXT: only on kernels built with sched_ext
}

// Limits of nested cgroups and repeated operations.
const (
	MaxCgroupDepth = 4     // path components of a cgroup name ("a/b/c/d")
	MinEveryMS     = 10    // fastest repetition of an operation during a step
	MaxEveryMS     = 60000 // slowest
	MaxCycle       = 16    // cpusets in an op's cycle
)

// AllOps lists every operation name, for error messages and docs.
var AllOps = []string{OpAddCgroup, OpRemoveCgroup, OpSetCpuset, OpClearCpuset, OpSwapCpusets, OpSetWeight,
	OpSetAffinity, OpSetPolicy, OpMoveWorkers, OpFreeze, OpThaw, OpKillScheduler}

// Repeatable reports whether an operation may carry every_ms: it is
// applied at the step's start and again every EveryMS while the step
// holds.
func Repeatable(op string) bool {
	switch op {
	case OpSetCpuset, OpClearCpuset, OpSwapCpusets, OpSetAffinity, OpSetPolicy, OpSetWeight:
		return true
	}
	return false
}

// checkCgroupName accepts "name" or a nested path "a/b" of at most
// MaxCgroupDepth components, each like a scenario name.
func checkCgroupName(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) > MaxCgroupDepth {
		return fmt.Errorf("cgroup name %q: nested %d deep, at most %d", name, len(parts), MaxCgroupDepth)
	}
	for _, p := range parts {
		if !nameRE.MatchString(p) {
			return fmt.Errorf("cgroup name %q: use letters, digits, '_', '.', '-' (at most 64) in each '/'-separated part", name)
		}
	}
	return nil
}

// parentOf returns the parent path of a nested cgroup name ("" for a top
// level one).
func parentOf(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ""
	}
	return name[:i]
}

// hasChildren reports whether a live cgroup has live children.
func hasChildren(live map[string]*cgState, name string) bool {
	for n := range live {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

// addParents creates the missing ancestors of a nested cgroup as implicit
// (worker-less) cgroups and checks the existing ones may have children:
// cgroup v2 lets only cgroups without processes enable controllers for
// their children.
func addParents(live map[string]*cgState, name string) error {
	var missing []string
	for p := parentOf(name); p != ""; p = parentOf(p) {
		c, ok := live[p]
		if !ok {
			missing = append(missing, p)
			continue
		}
		if c.workers > 0 {
			return fmt.Errorf("cgroup %q: its parent %q has workers, and cgroup v2 lets only cgroups without processes have children", name, p)
		}
		if c.frozen {
			return fmt.Errorf("cgroup %q: its parent %q is frozen", name, p)
		}
	}
	if len(live)+len(missing) >= MaxCgroups {
		return fmt.Errorf("more than %d cgroups at once", MaxCgroups)
	}
	for _, p := range missing {
		live[p] = &cgState{implicit: true}
	}
	return nil
}

// checkRepeat validates every_ms and cycle.
func checkRepeat(o *Op) error {
	if o.EveryMS != 0 {
		if !Repeatable(o.Op) {
			return fmt.Errorf("%s cannot repeat: every_ms applies to set_cpuset, clear_cpuset, swap_cpusets, set_affinity, set_policy, set_weight", o.Op)
		}
		if o.EveryMS < MinEveryMS || o.EveryMS > MaxEveryMS {
			return fmt.Errorf("%s: every_ms %d out of range %d..%d", o.Op, o.EveryMS, MinEveryMS, MaxEveryMS)
		}
	}
	if len(o.Cycle) != 0 {
		if o.Op != OpSetCpuset && o.Op != OpSetAffinity {
			return fmt.Errorf("%s: cycle only applies to set_cpuset and set_affinity", o.Op)
		}
		if o.Cpuset != "" {
			return fmt.Errorf("%s: give cpuset or cycle, not both", o.Op)
		}
		if len(o.Cycle) > MaxCycle {
			return fmt.Errorf("%s: cycle has %d cpusets, at most %d", o.Op, len(o.Cycle), MaxCycle)
		}
		for _, c := range o.Cycle {
			if err := checkAffinitySpec(o.Op, c); err != nil {
				return err
			}
		}
	}
	if o.Op != OpSetPolicy && (o.Policy != "" || o.Priority != 0) {
		return fmt.Errorf("%s: policy and priority only apply to set_policy", o.Op)
	}
	if o.Op != OpSwapCpusets && o.With != "" {
		return fmt.Errorf("%s: with only applies to swap_cpusets", o.Op)
	}
	return nil
}

func checkAffinitySpec(op, spec string) error {
	if op == OpSetAffinity && spec == AffinityRandom {
		return nil
	}
	if _, err := ParseCpuset(spec); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// applyMoreOp validates the operations defined in this file.
func applyMoreOp(live map[string]*cgState, o *Op) error {
	need := func(name string) (*cgState, error) {
		c, ok := live[name]
		if !ok {
			if name == "" {
				return nil, fmt.Errorf("%s needs \"cgroup\"", o.Op)
			}
			return nil, fmt.Errorf("%s: cgroup %q does not exist at this step", o.Op, name)
		}
		return c, nil
	}
	switch o.Op {
	case OpClearCpuset:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		if o.Cpuset != "" {
			return errors.New("clear_cpuset takes no cpuset")
		}
	case OpSwapCpusets:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		if o.With == "" {
			return errors.New("swap_cpusets needs \"with\": the other cgroup")
		}
		if _, err := need(o.With); err != nil {
			return err
		}
		if o.With == o.Cgroup {
			return errors.New("swap_cpusets: a cgroup cannot swap with itself")
		}
	case OpSetAffinity:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		if err := checkAffinitySpec(o.Op, o.Cpuset); err != nil {
			return err
		}
	case OpSetPolicy:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		pol, ok := Policies[o.Policy]
		if !ok {
			return fmt.Errorf("set_policy: policy %q (other, batch, idle, fifo, rr, ext)", o.Policy)
		}
		rt := pol == 1 || pol == 2
		switch {
		case rt && (o.Priority < 1 || o.Priority > 99):
			return fmt.Errorf("set_policy %s: priority %d out of range 1..99", o.Policy, o.Priority)
		case !rt && o.Priority != 0:
			return fmt.Errorf("set_policy %s: priority applies only to fifo and rr", o.Policy)
		}
	case OpFreeze:
		c, err := need(o.Cgroup)
		if err != nil {
			return err
		}
		if c.frozen {
			return fmt.Errorf("freeze_cgroup: %q is already frozen", o.Cgroup)
		}
		if hasChildren(live, o.Cgroup) {
			return fmt.Errorf("freeze_cgroup: %q has child cgroups; freeze the leaves", o.Cgroup)
		}
		if c.work.Type == WorkPingPong && c.work.PairWith != "" {
			return fmt.Errorf("freeze_cgroup: %q pairs its workers with cgroup %q, which would wait forever", o.Cgroup, c.work.PairWith)
		}
		c.frozen = true
	case OpThaw:
		c, err := need(o.Cgroup)
		if err != nil {
			return err
		}
		if !c.frozen {
			return fmt.Errorf("thaw_cgroup: %q is not frozen", o.Cgroup)
		}
		c.frozen = false
	case "":
		return errors.New("op missing")
	default:
		return fmt.Errorf("unknown op %q (%s)", o.Op, strings.Join(AllOps, ", "))
	}
	return nil
}

// checkMove adds the nesting and freezing rules to move_workers.
func checkMove(live map[string]*cgState, o *Op) error {
	if hasChildren(live, o.To) {
		return fmt.Errorf("move_workers: %q has child cgroups, and cgroup v2 lets only leaf cgroups hold processes", o.To)
	}
	if live[o.Cgroup].frozen || live[o.To].frozen {
		return errors.New("move_workers: thaw the cgroups first (moving tasks into or out of a frozen cgroup freezes or thaws them)")
	}
	return nil
}

// checkRemove refuses to remove a cgroup that still has children.
func checkRemove(live map[string]*cgState, name string) error {
	if hasChildren(live, name) {
		return fmt.Errorf("remove_cgroup: %q has child cgroups; remove them first", name)
	}
	return nil
}

// TopologyOf builds the topology a guest of shape NnNlNcNt (the
// --topology form, see pkg/topology) shows: CPUs 0..N-1 online, LLCs and
// NUMA nodes as pkg/topology lays them out.
func TopologyOf(shape string) (*Topology, error) {
	sh, err := topology.Parse(shape)
	if err != nil {
		return nil, fmt.Errorf("topology %q: %w", shape, err)
	}
	t, err := topology.New(sh)
	if err != nil {
		return nil, fmt.Errorf("topology %q: %w", shape, err)
	}
	out := &Topology{}
	llcs := map[int]int{}
	nodes := map[int]int{}
	for _, c := range t.CPUs {
		out.Online = append(out.Online, c.Index)
		if i, ok := llcs[c.LLC]; ok {
			out.LLCs[i] = append(out.LLCs[i], c.Index)
		} else {
			llcs[c.LLC] = len(out.LLCs)
			out.LLCs = append(out.LLCs, []int{c.Index})
		}
		if i, ok := nodes[c.Node]; ok {
			out.Nodes[i] = append(out.Nodes[i], c.Index)
		} else {
			nodes[c.Node] = len(out.Nodes)
			out.Nodes = append(out.Nodes, []int{c.Index})
		}
	}
	return out, nil
}

// CheckTopology resolves every cpuset the scenario names (cgroups, added
// cgroups, set_cpuset, set_affinity and their cycles) against topo, so
// that a scenario that does not fit a guest fails before anything starts.
func (s *Scenario) CheckTopology(topo *Topology) error {
	res := func(spec, what string) error {
		if spec == AffinityRandom && strings.HasPrefix(what, OpSetAffinity) {
			return nil
		}
		cs, err := ParseCpuset(spec)
		if err == nil {
			_, err = cs.Resolve(topo)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	for i, st := range s.Steps {
		for _, c := range st.Cgroups {
			if err := res(c.Cpuset, fmt.Sprintf("step %d cgroup %s", i, c.Name)); err != nil {
				return err
			}
		}
		for _, o := range st.Ops {
			var specs []string
			switch o.Op {
			case OpSetCpuset, OpSetAffinity:
				specs = append(specs, o.Cycle...)
				if len(o.Cycle) == 0 {
					specs = append(specs, o.Cpuset)
				}
			case OpAddCgroup:
				if o.Add != nil {
					specs = append(specs, o.Add.Cpuset)
				}
			}
			for _, sp := range specs {
				if err := res(sp, fmt.Sprintf("%s step %d %s", o.Op, i, o.Cgroup)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
