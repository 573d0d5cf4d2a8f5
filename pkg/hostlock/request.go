package hostlock

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
)

// Kind says what a Request reserves.
type Kind int

const (
	// LLCs reserves whole last-level caches: LOCK_EX on one lock file per
	// LLC (LOCK_SH with Shared).
	LLCs Kind = iota
	// CPUs reserves single CPUs: LOCK_EX on each CPU's lock file plus
	// LOCK_SH on its LLC's, so exclusive LLC holders and CPU holders
	// exclude each other. CPUs are packed into as few LLCs as possible.
	CPUs
	// CPUCap reserves a CPU budget: LOCK_SH on the fewest LLCs whose
	// allowed CPUs add up to the budget; the reservation's CPUs are the
	// first Count of them.
	CPUCap
)

// Request is what to reserve and how to wait for it.
type Request struct {
	Kind    Kind
	Count   int  // LLCs for LLCs, CPUs for CPUs and CPUCap
	Percent int  // CPUCap only, used when Count is 0: percent of allowed CPUs, rounded up
	Shared  bool // LLCs only: LOCK_SH, coexisting with other shared holders and CPU holders
	Node    int  // NUMA node to take everything from; -1 for any
	NoWait  bool // one non-blocking attempt; *BusyError when not enough is free
	// Command is recorded in the lock files for --status.
	Command string
	// Progress, when not nil, receives a waiting message and a once a
	// second elapsed-time update while the request waits (a terminal).
	Progress io.Writer
	// OnWait, when not nil, is called once when the request starts to
	// wait (it could not be met at once), before it blocks.
	OnWait func()
}

// String renders the request as ktstr-hostlock flags.
func (r Request) String() string {
	var s string
	switch r.Kind {
	case LLCs:
		s = fmt.Sprintf("--llcs %d", r.Count)
		if r.Shared {
			s += " --shared"
		}
	case CPUs:
		s = fmt.Sprintf("--cpus %d", r.Count)
	case CPUCap:
		if r.Count > 0 {
			s = fmt.Sprintf("--cpu-cap %d", r.Count)
		} else {
			s = fmt.Sprintf("--cpu-cap %d%%", r.Percent)
		}
	}
	if r.Node >= 0 {
		s += fmt.Sprintf(" --numa-node %d", r.Node)
	}
	return s
}

func (r Request) mode() string {
	if r.Kind == LLCs && !r.Shared {
		return "exclusive"
	}
	if r.Kind == CPUs {
		return "cpus"
	}
	return "shared"
}

// UnsatisfiableError says a request can never be met on this host (more
// LLCs or CPUs than exist or are allowed). ktstr-hostlock exits 3.
type UnsatisfiableError struct{ Msg string }

func (e *UnsatisfiableError) Error() string { return e.Msg }

// step is one flock of a unit, taken in order.
type step struct {
	name string
	excl bool
}

// unit is the smallest thing a request acquires: one LLC (LLCs, CPUCap)
// or one CPU (CPUs), worth weight towards the request's need.
type unit struct {
	steps  []step
	llc    int
	node   int
	cpus   []int
	weight int
}

// plan returns the candidate units in preference order (node by node, LLC
// by LLC, SMT siblings together) and the weight needed.
func plan(t *hosttopo.Topology, r Request) ([]*unit, int, error) {
	if r.Kind == LLCs && r.Count < 1 || r.Kind == CPUs && r.Count < 1 ||
		r.Kind == CPUCap && r.Count < 1 && (r.Percent < 1 || r.Percent > 100) {
		return nil, 0, fmt.Errorf("request %s: the count must be at least 1 (a percentage 1-100)", r)
	}
	var llcs []hosttopo.LLC
	for _, l := range t.LLCs {
		if (r.Node < 0 || l.Node == r.Node) && len(t.AllowedIn(l.Index)) > 0 {
			llcs = append(llcs, l)
		}
	}
	sort.SliceStable(llcs, func(i, j int) bool { return llcs[i].Node < llcs[j].Node })
	where := "on this host"
	if r.Node >= 0 {
		where = fmt.Sprintf("on NUMA node %d", r.Node)
	}
	var units []*unit
	allowed := 0
	for _, l := range llcs {
		in := t.AllowedIn(l.Index)
		allowed += len(in)
		switch r.Kind {
		case LLCs, CPUCap:
			units = append(units, &unit{steps: []step{{llcFile(l.Index), r.Kind == LLCs && !r.Shared}},
				llc: l.Index, node: l.Node, cpus: in, weight: map[bool]int{true: 1, false: len(in)}[r.Kind == LLCs]})
		case CPUs:
			sort.SliceStable(in, func(i, j int) bool {
				a, _ := t.CPU(in[i])
				b, _ := t.CPU(in[j])
				return a.Siblings[0] < b.Siblings[0]
			})
			for _, c := range in {
				units = append(units, &unit{steps: []step{{llcFile(l.Index), false}, {cpuFile(c), true}},
					llc: l.Index, node: l.Node, cpus: []int{c}, weight: 1})
			}
		}
	}
	need := r.Count
	switch r.Kind {
	case LLCs:
		if need > len(llcs) {
			return nil, 0, &UnsatisfiableError{fmt.Sprintf("asked for %d LLCs but only %d have CPUs this process may use %s (allowed CPUs %s)",
				need, len(llcs), where, cpulist.Format(t.Allowed))}
		}
	case CPUs, CPUCap:
		if r.Kind == CPUCap && need < 1 {
			need = (r.Percent*len(t.Allowed) + 99) / 100
		}
		if need > allowed {
			return nil, 0, &UnsatisfiableError{fmt.Sprintf("asked for %d CPUs but this process may use only %d %s (%s)",
				need, allowed, where, cpulist.Format(t.Allowed))}
		}
	}
	return units, need, nil
}

// pick chooses from the held units a subset worth at least need: from one
// NUMA node when any node has enough, else from the fewest nodes; within
// a node, for CPUs and CPUCap, from the LLCs with the most held first (so
// CPUs pack into few LLCs). It returns nil when the held units are not
// worth need.
func pick(got []*heldUnit, need int, kind Kind) (sel, rest []*heldUnit) {
	total := 0
	byNode := map[int][]*heldUnit{}
	weight := map[int]int{}
	var nodes []int
	for _, h := range got {
		total += h.u.weight
		if _, ok := byNode[h.u.node]; !ok {
			nodes = append(nodes, h.u.node)
		}
		byNode[h.u.node] = append(byNode[h.u.node], h)
		weight[h.u.node] += h.u.weight
	}
	if total < need {
		return nil, got
	}
	sort.Ints(nodes)
	sort.SliceStable(nodes, func(i, j int) bool {
		a, b := weight[nodes[i]] >= need, weight[nodes[j]] >= need
		if a != b {
			return a // a node with enough on its own first
		}
		return !a && weight[nodes[i]] > weight[nodes[j]]
	})
	chosen := map[*heldUnit]bool{}
	w := 0
	for _, n := range nodes {
		hs := byNode[n]
		if kind != LLCs {
			llcW := map[int]int{}
			for _, h := range hs {
				llcW[h.u.llc] += h.u.weight
			}
			hs = append([]*heldUnit(nil), hs...)
			sort.SliceStable(hs, func(i, j int) bool {
				a, b := hs[i].u.llc, hs[j].u.llc
				if llcW[a] != llcW[b] {
					return llcW[a] > llcW[b]
				}
				return a < b
			})
		}
		for _, h := range hs {
			if w >= need {
				break
			}
			chosen[h] = true
			w += h.u.weight
		}
		if w >= need {
			break
		}
	}
	for _, h := range got {
		if chosen[h] {
			sel = append(sel, h)
		} else {
			rest = append(rest, h)
		}
	}
	return sel, rest
}

func describeWant(r Request, need int) string {
	switch r.Kind {
	case LLCs:
		return fmt.Sprintf("%d %s LLC(s)", need, strings.TrimSuffix(r.mode(), "s"))
	case CPUs:
		return fmt.Sprintf("%d CPU(s)", need)
	}
	return fmt.Sprintf("a budget of %d CPU(s)", need)
}
