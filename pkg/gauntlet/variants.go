package gauntlet

import (
	"fmt"
	"path"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/kernel"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// kernelVersion is the kernel's release (a variable only so that the
// name is short at its call sites).
var kernelVersion = kernel.ImageVersion

// Variant is one run of the suite: everything run-variant needs, with
// absolute paths. It is what RUNDIR/plan.json lists.
type Variant struct {
	Name          string   `json:"name"`
	Scheduler     string   `json:"scheduler"`
	Binary        string   `json:"binary"` // "" for EEVDF
	SchedulerArgs []string `json:"scheduler_args"`
	Scenario      string   `json:"scenario"`
	ScenarioArg   string   `json:"scenario_arg"`
	Preset        string   `json:"preset"`
	Topology      string   `json:"topology"`
	KernelName    string   `json:"kernel_name"`
	Kernel        string   `json:"kernel"`
	Rep           int      `json:"rep"`
	Memory        string   `json:"memory"`
	Timeout       string   `json:"timeout"`
	VMM           string   `json:"vmm"`
	Append        string   `json:"append,omitempty"`
	VCPUs         int      `json:"vcpus"`
	Reserve       string   `json:"reserve,omitempty"` // ktstr-run --reserve; "" (plans before it) ktstr-run's default
	EstimateS     float64  `json:"estimate_s"`
	AutoRepro     bool     `json:"auto_repro"` // ktstr-run --auto-repro

	features []string
}

// Expand lists the suite's variants: schedulers × scenarios × presets ×
// kernels × repetitions, in that nesting order. The kernel part appears
// in names only when the suite has several kernels, the repN part only
// with several repetitions.
func (l *Loaded) Expand() []Variant {
	var out []Variant
	for _, s := range l.Schedulers {
		for _, sc := range l.Scenarios {
			for _, p := range l.Presets {
				for _, k := range l.Kernels {
					for r := 1; r <= l.Reps; r++ {
						name := runrecord.Variant{Scheduler: s.Name, Scenario: sc.Name, Preset: p.Name}
						if len(l.Kernels) > 1 {
							name.Kernel = k.Name
						}
						if l.Reps > 1 {
							name.Rep = r
						}
						cpus := p.Shape.NumCPUs()
						mem := l.Memory
						if mem == "" {
							mem = memoryFor(cpus)
						}
						v := Variant{
							Name: name.String(), Scheduler: s.Name, Binary: s.Binary, SchedulerArgs: s.Args,
							Scenario: sc.Name, ScenarioArg: sc.Arg, Preset: p.Name, Topology: p.Shape.String(),
							KernelName: k.Name, Kernel: k.Path, Rep: r, Memory: mem, Timeout: l.Timeout.String(),
							VMM: l.VMM, Append: l.Append, VCPUs: cpus, Reserve: l.Reserve, AutoRepro: l.AutoRepro,
						}
						// Upstream's estimate: boot, one more second per 10 vCPUs
						// past 16, the scenario, 2 s to tear down.
						v.EstimateS = l.BootS + float64(max(0, cpus-16)/10) + sc.Hold.Seconds() + 2
						v.features = features(s.Name, sc.Name, k.Name, p.Shape.NumCPUs(), p.Shape.LLCs, p.Shape.Nodes, p.Shape.ThreadsPerCore)
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}

// memoryFor sizes a guest as upstream does for a topology (64 MiB per
// vCPU) with ktstr-run's default, 1 GiB, as the floor.
func memoryFor(cpus int) string {
	mb := max(1024, cpus*64)
	if mb%1024 == 0 {
		return fmt.Sprintf("%dG", mb/1024)
	}
	return fmt.Sprintf("%dM", mb)
}

// features are what a variant covers for the budget selection. Like
// upstream's: its scheduler, scenario and kernel, and its shape's
// classes (upstream's buckets of vCPUs, LLCs and NUMA nodes, SMT or
// not). Unlike upstream's, also the pairs scheduler×scenario,
// scheduler×shape and scenario×shape (shape = all four classes), so that
// a larger budget buys each scheduler on each kind of machine rather
// than stopping once every single value has been seen.
func features(sched, scen, kern string, cpus, llcs, nodes, threads int) []string {
	bucket := func(n int, edges ...int) int {
		for i, e := range edges {
			if n <= e {
				return i
			}
		}
		return len(edges)
	}
	smt := "nosmt"
	if threads > 1 {
		smt = "smt"
	}
	shape := fmt.Sprintf("cpus=%d,llcs=%d,numa=%d,%s", bucket(cpus, 8, 16, 64, 128), bucket(llcs, 1, 2, 4, 8), bucket(nodes, 1, 2, 4), smt)
	f := []string{"sched=" + sched, "scenario=" + scen, "kernel=" + kern}
	f = append(f, strings.Split(shape, ",")...)
	return append(f, "sched+scenario="+sched+"+"+scen, "sched+shape="+sched+"+"+shape, "scenario+shape="+scen+"+"+shape)
}

// Match reports whether glob matches variant name. A glob matches a
// variant when it matches the variant's first k parts, k being the
// number of parts in the glob; each part is a path.Match pattern (*, ?,
// [...]). So "scx_simple" matches every scx_simple variant, "*/steady"
// every steady one, and "*/*/tiny-*" the tiny presets.
func Match(glob, name string) (bool, error) {
	gp := strings.Split(glob, "/")
	np := strings.Split(name, "/")
	if len(gp) > len(np) {
		// Still validate the pattern.
		for _, g := range gp {
			if _, err := path.Match(g, ""); err != nil {
				return false, fmt.Errorf("pattern %q: %w", glob, err)
			}
		}
		return false, nil
	}
	for i, g := range gp {
		ok, err := path.Match(g, np[i])
		if err != nil {
			return false, fmt.Errorf("pattern %q: %w", glob, err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// Filter keeps the variants that match any of only (all when only is
// empty) and none of exclude.
func Filter(vs []Variant, only, exclude []string) ([]Variant, error) {
	for _, g := range append(append([]string(nil), only...), exclude...) {
		if _, err := Match(g, "a/b/c"); err != nil {
			return nil, err
		}
	}
	var out []Variant
	for _, v := range vs {
		keep := len(only) == 0
		for _, g := range only {
			if ok, _ := Match(g, v.Name); ok {
				keep = true
				break
			}
		}
		for _, g := range exclude {
			if ok, _ := Match(g, v.Name); ok {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, v)
		}
	}
	return out, nil
}

// Budget picks the subset of vs that covers the most features within
// budget seconds of estimated run time, as upstream ktstr's budget
// selection does: greedily take the variant with the most not yet
// covered features per estimated second (ties: the smaller name), until
// no variant that still fits adds a feature. The result keeps vs's
// order. A budget that fits everything does not mean everything: a
// variant that adds no coverage (another repetition, say) is left out.
func Budget(vs []Variant, budgetS float64) []Variant {
	covered := map[string]bool{}
	used := make([]bool, len(vs))
	left := budgetS
	for {
		best, bestRatio := -1, 0.0
		for i, v := range vs {
			if used[i] || v.EstimateS > left {
				continue
			}
			n := 0
			for _, f := range v.features {
				if !covered[f] {
					n++
				}
			}
			if n == 0 {
				continue
			}
			ratio := float64(n) * 1e6
			if v.EstimateS > 0 {
				ratio = float64(n) / v.EstimateS
			}
			if best < 0 || ratio > bestRatio || ratio == bestRatio && v.Name < vs[best].Name {
				best, bestRatio = i, ratio
			}
		}
		if best < 0 {
			break
		}
		used[best] = true
		left -= vs[best].EstimateS
		for _, f := range vs[best].features {
			covered[f] = true
		}
	}
	var out []Variant
	for i, v := range vs {
		if used[i] {
			out = append(out, v)
		}
	}
	return out
}

// Names lists the variants' names.
func Names(vs []Variant) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}
