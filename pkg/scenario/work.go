package scenario

import (
	"fmt"
	"slices"
	"strings"
)

// Work types added after the first five, named as upstream ktstr names
// them (in snake_case). "cpu_spin" and "yield_heavy" are the same work as
// "spin" and "yield".
const (
	WorkCPUSpin         = "cpu_spin"         // = spin
	WorkYieldHeavy      = "yield_heavy"      // = yield
	WorkMixed           = "mixed"            // a spin burst, then sched_yield
	WorkIOSync          = "io_sync"          // 64 KiB write to a tmpfs file, then 100 µs sleep
	WorkPipeIO          = "pipe_io"          // pairs: spin burst_iters, then a pipe round trip
	WorkFutexPingPong   = "futex_ping_pong"  // pairs: spin spin_iters, then a futex hand-off
	WorkFutexFanOut     = "futex_fan_out"    // groups: one messenger wakes fan_out receivers
	WorkCachePressure   = "cache_pressure"   // strided read-modify-write over size_kb
	WorkCacheYield      = "cache_yield"      // cache_pressure pass, then sched_yield
	WorkCachePipe       = "cache_pipe"       // pairs: cache pass, then a pipe round trip
	WorkSequence        = "sequence"         // phases of spin/sleep/yield/io, repeated
	WorkForkExit        = "fork_exit"        // fork, the child exits at once, wait
	WorkNiceSweep       = "nice_sweep"       // spin, step nice through -20..19, yield
	WorkAffinityChurn   = "affinity_churn"   // spin, pin to a random allowed CPU, yield
	WorkPolicyChurn     = "policy_churn"     // spin, switch scheduling policy, yield
	WorkFanOutCompute   = "fan_out_compute"  // groups: wake fan_out workers who sleep, then multiply matrices
	WorkPageFaultChurn  = "page_fault_churn" // touch random pages of region_kb, drop them, spin
	WorkMutexContention = "mutex_contention" // groups of contenders share one futex lock
	WorkCustom          = "custom"           // run argv to completion, again and again
)

// Phase is one step of sequence work.
type Phase struct {
	Phase string `json:"phase"` // spin, sleep, yield, io
	MS    int    `json:"ms"`
}

// Sequence phase names.
var PhaseNames = []string{"spin", "sleep", "yield", "io"}

// intParam is one integer work parameter: its JSON name, where it lives,
// and its range.
type intParam struct {
	name     string
	get      func(*Work) *int
	min, max int
}

var intParams = []intParam{
	{"run_ms", func(w *Work) *int { return &w.RunMS }, 1, 60000},
	{"sleep_ms", func(w *Work) *int { return &w.SleepMS }, 1, 60000},
	{"spin_iters", func(w *Work) *int { return &w.SpinIters }, 1, 1 << 24},
	{"burst_iters", func(w *Work) *int { return &w.BurstIters }, 1, 1 << 24},
	{"size_kb", func(w *Work) *int { return &w.SizeKB }, 1, 65536},
	{"stride", func(w *Work) *int { return &w.Stride }, 1, 1 << 20},
	{"fan_out", func(w *Work) *int { return &w.FanOut }, 1, 63},
	{"cache_footprint_kb", func(w *Work) *int { return &w.FootprintKB }, 1, 16384},
	{"operations", func(w *Work) *int { return &w.Operations }, 1, 1000},
	{"sleep_us", func(w *Work) *int { return &w.SleepUS }, 1, 1000000},
	{"region_kb", func(w *Work) *int { return &w.RegionKB }, 4, 262144},
	{"touches_per_cycle", func(w *Work) *int { return &w.Touches }, 1, 65536},
	{"contenders", func(w *Work) *int { return &w.Contenders }, 2, 64},
	{"hold_iters", func(w *Work) *int { return &w.HoldIters }, 1, 1 << 24},
	{"work_iters", func(w *Work) *int { return &w.WorkIters }, 1, 1 << 24},
}

// WorkInfo describes one work type.
type WorkInfo struct {
	Name     string
	Kind     string         // the type it is an alias of, or Name
	Summary  string         // one line, for listings and errors
	Unit     string         // what one iteration counts: its metric of progress
	Defaults map[string]int // integer parameters it takes, with defaults (0: required)
	Paired   bool           // workers run in pairs (within a cgroup or with pair_with)
	Fair     bool           // the fairness check applies: identical CPU-bound or periodic work
	Wakes    bool           // it reports wake latencies
}

var workInfos = []WorkInfo{
	{Name: WorkSpin, Summary: "pure CPU: xorshift spin bursts", Unit: "spin bursts", Fair: true},
	{Name: WorkCPUSpin, Kind: WorkSpin, Summary: "alias of spin", Unit: "spin bursts", Fair: true},
	{Name: WorkYield, Summary: "16 short spins, each followed by sched_yield", Unit: "yield rounds", Fair: true},
	{Name: WorkYieldHeavy, Kind: WorkYield, Summary: "alias of yield", Unit: "yield rounds", Fair: true},
	{Name: WorkMixed, Summary: "a 1024-iteration spin, then sched_yield", Unit: "spin+yield rounds", Fair: true},
	{Name: WorkIOSync, Summary: "64 KiB write to a tmpfs file, fsync, 100 us sleep", Unit: "writes", Wakes: true},
	{Name: WorkBursty, Summary: "spin run_ms, sleep sleep_ms, repeat", Unit: "spin bursts", Fair: true, Wakes: true,
		Defaults: map[string]int{"run_ms": 0, "sleep_ms": 0}},
	{Name: WorkPingPong, Summary: "pairs waking each other through a pipe (mode pipe) or a futex (mode futex)", Unit: "round trips", Paired: true, Wakes: true},
	{Name: WorkPipeIO, Summary: "pairs: spin burst_iters, then a pipe hand-off to the partner", Unit: "round trips", Paired: true, Wakes: true,
		Defaults: map[string]int{"burst_iters": 1024}},
	{Name: WorkFutexPingPong, Summary: "pairs: spin spin_iters, then a futex hand-off to the partner", Unit: "round trips", Paired: true, Wakes: true,
		Defaults: map[string]int{"spin_iters": 1024}},
	{Name: WorkFutexFanOut, Summary: "groups of 1+fan_out: the messenger spins spin_iters and wakes every receiver", Unit: "wakes sent/received", Wakes: true,
		Defaults: map[string]int{"fan_out": 4, "spin_iters": 1024}},
	{Name: WorkCachePressure, Summary: "strided read-modify-write passes over a size_kb buffer", Unit: "buffer passes", Fair: true,
		Defaults: map[string]int{"size_kb": 32, "stride": 64}},
	{Name: WorkCacheYield, Summary: "a cache_pressure pass, then sched_yield", Unit: "buffer passes", Fair: true, Wakes: true,
		Defaults: map[string]int{"size_kb": 32, "stride": 64}},
	{Name: WorkCachePipe, Summary: "pairs: a pass over size_kb, spin burst_iters, then a pipe hand-off", Unit: "round trips", Paired: true, Wakes: true,
		Defaults: map[string]int{"size_kb": 32, "burst_iters": 1024}},
	{Name: WorkSequence, Summary: "phases (spin, sleep, yield, io) run in order, repeated", Unit: "phase steps", Wakes: true},
	{Name: WorkForkExit, Summary: "fork a child that exits at once, wait for it, repeat", Unit: "forks"},
	{Name: WorkNiceSweep, Summary: "a 512-iteration spin, next nice level of -20..19, sched_yield", Unit: "nice steps", Wakes: true},
	{Name: WorkAffinityChurn, Summary: "spin spin_iters, pin to a random allowed CPU, sched_yield", Unit: "affinity changes", Wakes: true,
		Defaults: map[string]int{"spin_iters": 1024}},
	{Name: WorkPolicyChurn, Summary: "spin spin_iters, switch to the next of OTHER/BATCH/IDLE/FIFO/RR, sched_yield", Unit: "policy changes", Wakes: true,
		Defaults: map[string]int{"spin_iters": 1024}},
	{Name: WorkFanOutCompute, Summary: "groups of 1+fan_out: wake, sleep sleep_us, then operations matrix multiplies over cache_footprint_kb", Unit: "wakes sent/compute rounds", Wakes: true,
		Defaults: map[string]int{"fan_out": 4, "cache_footprint_kb": 256, "operations": 5, "sleep_us": 100}},
	{Name: WorkPageFaultChurn, Summary: "write-fault touches_per_cycle random pages of region_kb, MADV_DONTNEED, spin spin_iters", Unit: "fault cycles",
		Defaults: map[string]int{"region_kb": 4096, "touches_per_cycle": 256, "spin_iters": 64}},
	{Name: WorkMutexContention, Summary: "groups of contenders: spin work_iters, take a shared futex lock, spin hold_iters, release", Unit: "lock acquisitions", Wakes: true,
		Defaults: map[string]int{"contenders": 4, "hold_iters": 256, "work_iters": 1024}},
	{Name: WorkCustom, Summary: "run argv to completion, again and again (each run counts)", Unit: "program runs"},
	{Name: WorkPayload, Summary: "run argv once, capture its output; its exit status is checked", Unit: ""},
}

// WorkTypes lists every work type name, in documentation order.
func WorkTypes() []string {
	out := make([]string, len(workInfos))
	for i, wi := range workInfos {
		out[i] = wi.Name
	}
	return out
}

// LookupWork returns the description of a work type.
func LookupWork(name string) (WorkInfo, bool) {
	for _, wi := range workInfos {
		if wi.Name == name {
			if wi.Kind == "" {
				wi.Kind = wi.Name
			}
			return wi, true
		}
	}
	return WorkInfo{}, false
}

func (w Work) info() WorkInfo {
	wi, _ := LookupWork(w.Type)
	return wi
}

// Kind is the work type with aliases resolved: cpu_spin is spin,
// yield_heavy is yield.
func (w Work) Kind() string {
	if k := w.info().Kind; k != "" {
		return k
	}
	return w.Type
}

// Unit names what one iteration of this work counts.
func (w Work) Unit() string { return w.info().Unit }

// Paired reports whether the workers run in pairs.
func (w Work) Paired() bool { return w.info().Paired }

// FairnessApplies reports whether the fairness check is meaningful for this
// work type: workers doing the same CPU-bound or periodic work.
func (w Work) FairnessApplies() bool { return w.info().Fair }

// GroupSize is how many workers one unit of this work needs: 2 for pairs,
// 1+fan_out for fan-out work, contenders for mutex contention, else 1.
func (w Work) GroupSize() int {
	d := w.WithDefaults()
	switch {
	case w.Paired():
		return 2
	case w.Type == WorkFutexFanOut || w.Type == WorkFanOutCompute:
		return 1 + d.FanOut
	case w.Type == WorkMutexContention:
		return d.Contenders
	}
	return 1
}

// WithDefaults returns w with every parameter its type takes and w leaves
// at 0 set to the type's default.
func (w Work) WithDefaults() Work {
	wi := w.info()
	for _, p := range intParams {
		if def, ok := wi.Defaults[p.name]; ok && *p.get(&w) == 0 {
			*p.get(&w) = def
		}
	}
	return w
}

// MaxWorkMemoryKB bounds the buffers one cgroup's workers allocate
// (size_kb, region_kb, cache_footprint_kb times the workers), so that a
// scenario cannot ask a guest of the default 1 GiB for more.
const MaxWorkMemoryKB = 256 * 1024

// MemoryKB is the buffer memory one worker of this work allocates (in
// KiB; 0 for work without buffers).
func (w Work) MemoryKB() int {
	d := w.WithDefaults()
	switch w.Type {
	case WorkCachePressure, WorkCacheYield, WorkCachePipe:
		return d.SizeKB
	case WorkPageFaultChurn:
		return d.RegionKB
	case WorkFanOutCompute:
		return d.FootprintKB
	}
	return 0
}

// MaxBlock is the longest a worker of this work intends to sleep between
// two units of progress (bursty's sleep, a sequence's sleep phase, ...):
// the guest waits that much longer for its reports.
func (w Work) MaxBlock() int {
	d := w.WithDefaults()
	ms := d.SleepMS
	if w.Type == WorkFanOutCompute {
		ms = max(ms, (d.SleepUS+999)/1000)
	}
	for _, p := range w.Phases {
		if p.Phase != "spin" {
			ms = max(ms, p.MS)
		}
	}
	return ms
}

func typeList() string {
	return strings.Join(WorkTypes(), ", ")
}

func (w Work) validate(workers int) error {
	wi, ok := LookupWork(w.Type)
	switch {
	case w.Type == "":
		return fmt.Errorf("work.type missing (%s)", typeList())
	case !ok:
		if sn := snake(w.Type); sn != w.Type {
			if _, ok := LookupWork(sn); ok {
				return fmt.Errorf("unknown work type %q: scenario files name it %q", w.Type, sn)
			}
		}
		return fmt.Errorf("unknown work type %q (%s)", w.Type, typeList())
	}
	for _, p := range intParams {
		v := *p.get(&w)
		if v == 0 {
			continue
		}
		if _, takes := wi.Defaults[p.name]; !takes {
			if p.name == "run_ms" || p.name == "sleep_ms" {
				return fmt.Errorf("run_ms/sleep_ms only apply to bursty work, not %s", w.Type)
			}
			return fmt.Errorf("%s does not apply to %s work (%s)", p.name, w.Type, takesList(wi))
		}
		if v < p.min || v > p.max {
			return fmt.Errorf("%s work: %s %d out of range %d..%d", w.Type, p.name, v, p.min, p.max)
		}
	}
	d := w.WithDefaults()
	switch w.Type {
	case WorkBursty:
		if w.RunMS <= 0 || w.SleepMS <= 0 {
			return fmt.Errorf("bursty work needs run_ms and sleep_ms in 1..60000 (got %d, %d)", w.RunMS, w.SleepMS)
		}
	case WorkPayload, WorkCustom:
		if len(w.Argv) == 0 || w.Argv[0] == "" {
			return fmt.Errorf("%s work needs argv with the program's path first", w.Type)
		}
	case WorkCachePressure, WorkCacheYield:
		if d.Stride > d.SizeKB*1024 {
			return fmt.Errorf("%s work: stride %d is larger than the %d KiB buffer", w.Type, d.Stride, d.SizeKB)
		}
	case WorkPageFaultChurn:
		if pages := d.RegionKB / 4; d.Touches > pages {
			return fmt.Errorf("page_fault_churn work: touches_per_cycle %d is more than the region's %d pages", d.Touches, pages)
		}
	case WorkSequence:
		if len(w.Phases) == 0 || len(w.Phases) > 16 {
			return fmt.Errorf("sequence work needs 1 to 16 phases, got %d", len(w.Phases))
		}
		for i, p := range w.Phases {
			if !slices.Contains(PhaseNames, p.Phase) {
				return fmt.Errorf("sequence phase %d: phase %q (%s)", i, p.Phase, strings.Join(PhaseNames, ", "))
			}
			if p.MS < 1 || p.MS > 60000 {
				return fmt.Errorf("sequence phase %d (%s): ms %d out of range 1..60000", i, p.Phase, p.MS)
			}
		}
	}
	if w.Type != WorkSequence && len(w.Phases) != 0 {
		return fmt.Errorf("phases only apply to sequence work, not %s", w.Type)
	}
	if w.Type != WorkPingPong && w.Mode != "" {
		return fmt.Errorf("mode only applies to pingpong work, not %s", w.Type)
	}
	if w.Type == WorkPingPong && w.Mode != "" && w.Mode != "pipe" && w.Mode != "futex" {
		return fmt.Errorf("pingpong mode %q: pipe or futex", w.Mode)
	}
	if !wi.Paired && w.PairWith != "" {
		return fmt.Errorf("pair_with only applies to paired work (pingpong, pipe_io, futex_ping_pong, cache_pipe), not %s", w.Type)
	}
	if w.Type != WorkPayload && w.Type != WorkCustom && len(w.Argv) != 0 {
		return fmt.Errorf("argv only applies to payload and custom work, not %s", w.Type)
	}
	if kb := d.MemoryKB(); kb > 0 && workers*kb > MaxWorkMemoryKB {
		return fmt.Errorf("%s work: %d workers of %d KiB each is more than %d MiB of buffers in one cgroup", w.Type, workers, kb, MaxWorkMemoryKB/1024)
	}
	if g := w.GroupSize(); g > 1 && !(wi.Paired && w.PairWith != "") && workers%g != 0 {
		if wi.Paired {
			return fmt.Errorf("%s work pairs workers within the cgroup: need an even count, got %d", w.Type, workers)
		}
		return fmt.Errorf("%s work runs in groups of %d: workers %d is not a multiple", w.Type, g, workers)
	}
	return nil
}

func takesList(wi WorkInfo) string {
	if len(wi.Defaults) == 0 {
		return "it takes no parameters"
	}
	var names []string
	for n := range wi.Defaults {
		names = append(names, n)
	}
	slices.Sort(names)
	return "it takes " + strings.Join(names, ", ")
}

// snake turns upstream's PascalCase work type names into ours: CpuSpin is
// cpu_spin.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
