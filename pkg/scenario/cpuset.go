package scenario

import (
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"slices"
	"strconv"
	"strings"
)

// CpusetKind says how a cpuset is chosen.
type CpusetKind int

// Cpuset kinds.
const (
	CpusetAll      CpusetKind = iota // every online CPU
	CpusetDisjoint                   // slice Index of N equal, disjoint slices
	CpusetList                       // explicit CPU list
	CpusetLLC                        // the CPUs of the Index-th last-level cache
	CpusetNUMA                       // the CPUs of the Index-th NUMA node
)

// Cpuset is a parsed cpuset specification.
type Cpuset struct {
	Kind  CpusetKind
	Index int
	N     int
	CPUs  []int // CpusetList, sorted, unique
}

// MaxCPU bounds CPU numbers in lists.
const MaxCPU = 4095

// ParseCpuset parses the cpuset grammar:
//
//	"" or "all"     every online CPU
//	"disjoint:I/N"  the I-th (0-based) of N disjoint, near-equal slices of the online CPUs
//	"list:L"        an explicit list such as 0-3,6 (a bare list "0-3,6" also works)
//	"llc:I"         the CPUs sharing the I-th last-level cache (ordered by lowest CPU)
//	"numa:I"        the CPUs of the I-th NUMA node
func ParseCpuset(s string) (Cpuset, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return Cpuset{Kind: CpusetAll}, nil
	}
	kind, arg, ok := strings.Cut(s, ":")
	if !ok {
		kind, arg = "list", s
	}
	switch kind {
	case "disjoint":
		a, b, ok := strings.Cut(arg, "/")
		if !ok {
			return Cpuset{}, fmt.Errorf("cpuset %q: want disjoint:I/N", s)
		}
		i, err1 := strconv.Atoi(a)
		n, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || n < 1 || n > MaxCPU+1 || i < 0 || i >= n {
			return Cpuset{}, fmt.Errorf("cpuset %q: want disjoint:I/N with 0 <= I < N", s)
		}
		return Cpuset{Kind: CpusetDisjoint, Index: i, N: n}, nil
	case "llc", "numa":
		i, err := strconv.Atoi(arg)
		if err != nil || i < 0 || i > MaxCPU {
			return Cpuset{}, fmt.Errorf("cpuset %q: want %s:I with I a small non-negative index", s, kind)
		}
		k := CpusetLLC
		if kind == "numa" {
			k = CpusetNUMA
		}
		return Cpuset{Kind: k, Index: i}, nil
	case "list":
		cpus, err := cpulist.Parse(arg)
		if err != nil {
			return Cpuset{}, fmt.Errorf("cpuset %q: %w", s, err)
		}
		if len(cpus) > 0 && cpus[len(cpus)-1] > MaxCPU {
			return Cpuset{}, fmt.Errorf("cpuset %q: CPU %d above %d", s, cpus[len(cpus)-1], MaxCPU)
		}
		if len(cpus) == 0 {
			return Cpuset{}, fmt.Errorf("cpuset %q: empty list", s)
		}
		return Cpuset{Kind: CpusetList, CPUs: cpus}, nil
	}
	return Cpuset{}, fmt.Errorf("cpuset %q: unknown kind %q (all, disjoint:I/N, list:L, llc:I, numa:I)", s, kind)
}

// Topology is what cpuset resolution needs to know about the guest.
type Topology struct {
	Online []int   // online CPUs, sorted
	LLCs   [][]int // CPU groups sharing a last-level cache, ordered by lowest CPU
	Nodes  [][]int // NUMA nodes' CPUs, in node order (empty nodes left out)
}

// Resolve turns a cpuset specification into concrete CPUs on topo.
func (c Cpuset) Resolve(topo *Topology) ([]int, error) {
	pick := func(groups [][]int, what string) ([]int, error) {
		if c.Index >= len(groups) {
			return nil, fmt.Errorf("cpuset wants %s %d but the guest has %d %ss: boot it with more", what, c.Index, len(groups), what)
		}
		return onlineOnly(groups[c.Index], topo.Online, what)
	}
	switch c.Kind {
	case CpusetAll:
		if len(topo.Online) == 0 {
			return nil, fmt.Errorf("no online CPUs")
		}
		return slices.Clone(topo.Online), nil
	case CpusetDisjoint:
		n := len(topo.Online)
		if c.N > n {
			return nil, fmt.Errorf("cpuset disjoint:%d/%d needs at least %d CPUs, the guest has %d", c.Index, c.N, c.N, n)
		}
		lo, hi := c.Index*n/c.N, (c.Index+1)*n/c.N
		return slices.Clone(topo.Online[lo:hi]), nil
	case CpusetList:
		for _, cpu := range c.CPUs {
			if !slices.Contains(topo.Online, cpu) {
				return nil, fmt.Errorf("cpuset list names CPU %d, which is not online (online: %s)", cpu, cpulist.Format(topo.Online))
			}
		}
		return slices.Clone(c.CPUs), nil
	case CpusetLLC:
		return pick(topo.LLCs, "LLC")
	case CpusetNUMA:
		return pick(topo.Nodes, "NUMA node")
	}
	return nil, fmt.Errorf("unknown cpuset kind %d", c.Kind)
}

func onlineOnly(cpus, online []int, what string) ([]int, error) {
	var out []int
	for _, c := range cpus {
		if slices.Contains(online, c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the chosen %s has no online CPU", what)
	}
	return out, nil
}

// Fits resolves every cpuset the scenario names (its cgroups' and its
// set_cpuset and add_cgroup operations') against topo, so that a scenario
// that does not fit a guest is refused before that guest boots.
func (s *Scenario) Fits(topo *Topology) error {
	res := func(spec, what string) error {
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
			switch {
			case o.Op == OpSetCpuset:
				if err := res(o.Cpuset, fmt.Sprintf("step %d set_cpuset %s", i, o.Cgroup)); err != nil {
					return err
				}
			case o.Op == OpAddCgroup && o.Add != nil:
				if err := res(o.Add.Cpuset, fmt.Sprintf("step %d add_cgroup %s", i, o.Add.Name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ShapeTopology is the Topology of a guest laid out as nodes x llcs (in
// all) x cpusPerLLC, CPUs numbered in that order: what ktstr-boot's
// NnNlNcNt shapes give a guest.
func ShapeTopology(nodes, llcs, cpusPerLLC int) *Topology {
	t := &Topology{}
	if nodes < 1 || llcs < nodes || cpusPerLLC < 1 {
		return t
	}
	perNode := llcs / nodes
	t.Nodes = make([][]int, nodes)
	for l := 0; l < llcs; l++ {
		var cpus []int
		for c := 0; c < cpusPerLLC; c++ {
			cpus = append(cpus, l*cpusPerLLC+c)
		}
		t.LLCs = append(t.LLCs, cpus)
		t.Online = append(t.Online, cpus...)
		n := min(l/max(perNode, 1), nodes-1)
		t.Nodes[n] = append(t.Nodes[n], cpus...)
	}
	return t
}
