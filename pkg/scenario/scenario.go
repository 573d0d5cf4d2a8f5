package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits that keep a scenario file from asking the guest for absurd work.
const (
	MaxSteps           = 64
	MaxCgroups         = 64
	MaxWorkersPerCG    = 256
	MaxHold            = 10 * time.Minute
	MaxFileSize        = 1 << 20
	DefaultHoldMS      = 2000
	DefaultWeight      = 100
	DefaultStarveMS    = 2000
	DefaultTaskStallMS = 2000
	DefaultSpreadPct   = 15.0
	DefaultAttachWait  = 10 * time.Second
)

// Work types.
const (
	WorkSpin     = "spin"     // pure CPU
	WorkYield    = "yield"    // short spins between sched_yield calls
	WorkPingPong = "pingpong" // pairs waking each other through pipes
	WorkBursty   = "bursty"   // run RunMS, sleep SleepMS, repeat
	WorkPayload  = "payload"  // an external program, output captured
)

// Operations between steps (more in ops.go).
const (
	OpAddCgroup     = "add_cgroup"
	OpRemoveCgroup  = "remove_cgroup"
	OpSetCpuset     = "set_cpuset"
	OpSetWeight     = "set_weight"
	OpMoveWorkers   = "move_workers"
	OpKillScheduler = "kill_scheduler"
)

// Scenario is a parsed scenario file.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Topology is the guest shape (NnNlNcNt) the scenario is written
	// for; Parse resolves every cpuset against it on the host.
	Topology string `json:"topology,omitempty"`
	// Notes say why the scenario's thresholds are what they are (the
	// measurements behind them); --list-scenarios does not show them.
	Notes  string `json:"notes,omitempty"`
	Checks Checks `json:"checks,omitzero"`
	Steps  []Step `json:"steps"`
}

// Checks overrides the defaults of the guest's checks. Zero values take the
// documented defaults (starvation 2000 ms, fairness spread 15 %);
// Disable names checks to skip: starvation, fairness, isolation, payload,
// task_stall.
type Checks struct {
	StarvationMS int      `json:"starvation_ms,omitempty"`
	SpreadPct    float64  `json:"fairness_spread_pct,omitempty"`
	TaskStallMS  int      `json:"task_stall_ms,omitempty"`
	Disable      []string `json:"disable,omitempty"`
	WorkloadChecks
}

// Step declares cgroups to add, operations to apply, and how long to hold.
type Step struct {
	Name    string   `json:"name,omitempty"`
	HoldMS  int      `json:"hold_ms,omitempty"`
	Cgroups []Cgroup `json:"cgroups,omitempty"`
	Ops     []Op     `json:"ops,omitempty"`
}

// Cgroup is one cgroup with its workers.
type Cgroup struct {
	Name    string `json:"name"`
	Cpuset  string `json:"cpuset,omitempty"` // grammar in ParseCpuset; empty = all
	Weight  int    `json:"weight,omitempty"` // cpu.weight 1..10000; 0 = 100
	Workers int    `json:"workers"`
	Work    Work   `json:"work"`
}

// Work is what a cgroup's workers do.
type Work struct {
	Type     string   `json:"type"`
	RunMS    int      `json:"run_ms,omitempty"`    // bursty
	SleepMS  int      `json:"sleep_ms,omitempty"`  // bursty
	PairWith string   `json:"pair_with,omitempty"` // pingpong: partner cgroup
	Mode     string   `json:"mode,omitempty"`      // pingpong: "pipe" (default) or "futex"
	Argv     []string `json:"argv,omitempty"`      // payload, custom
	// Parameters of the other work types (see work.go and
	// man/ktstr-scenario.5): 0 takes the type's default.
	SpinIters   int     `json:"spin_iters,omitempty"`
	BurstIters  int     `json:"burst_iters,omitempty"`
	SizeKB      int     `json:"size_kb,omitempty"`
	Stride      int     `json:"stride,omitempty"`
	FanOut      int     `json:"fan_out,omitempty"`
	FootprintKB int     `json:"cache_footprint_kb,omitempty"`
	Operations  int     `json:"operations,omitempty"`
	SleepUS     int     `json:"sleep_us,omitempty"`
	RegionKB    int     `json:"region_kb,omitempty"`
	Touches     int     `json:"touches_per_cycle,omitempty"`
	Contenders  int     `json:"contenders,omitempty"`
	HoldIters   int     `json:"hold_iters,omitempty"`
	WorkIters   int     `json:"work_iters,omitempty"`
	Phases      []Phase `json:"phases,omitempty"` // sequence
}

// Op is one operation applied at the start of a step, after its cgroups
// are added.
type Op struct {
	Op     string  `json:"op"`
	Cgroup string  `json:"cgroup,omitempty"` // target of remove/set_cpuset/set_weight; source of move_workers
	Add    *Cgroup `json:"add,omitempty"`    // add_cgroup
	Cpuset string  `json:"cpuset,omitempty"` // set_cpuset
	Weight int     `json:"weight,omitempty"` // set_weight
	To     string  `json:"to,omitempty"`     // move_workers destination
	Count  int     `json:"count,omitempty"`  // move_workers: 0 = all
	Signal string  `json:"signal,omitempty"` // kill_scheduler: KILL (default), TERM, INT
	// Operations of ops.go.
	With     string   `json:"with,omitempty"`     // swap_cpusets: the other cgroup
	Policy   string   `json:"policy,omitempty"`   // set_policy: other, batch, idle, fifo, rr, ext
	Priority int      `json:"priority,omitempty"` // set_policy fifo/rr: 1..99
	EveryMS  int      `json:"every_ms,omitempty"` // repeat the op this often while the step holds
	Cycle    []string `json:"cycle,omitempty"`    // set_cpuset/set_affinity: cpusets applied in turn
}

// Hold returns the step's hold duration.
func (s *Step) Hold() time.Duration {
	if s.HoldMS == 0 {
		return DefaultHoldMS * time.Millisecond
	}
	return time.Duration(s.HoldMS) * time.Millisecond
}

// StarvationThreshold returns the effective starvation gap.
func (c Checks) StarvationThreshold() time.Duration {
	if c.StarvationMS == 0 {
		return DefaultStarveMS * time.Millisecond
	}
	return time.Duration(c.StarvationMS) * time.Millisecond
}

// TaskStallThreshold returns the effective task-stall limit: how long any
// task of the guest may stay runnable without running.
func (c Checks) TaskStallThreshold() time.Duration {
	if c.TaskStallMS == 0 {
		return DefaultTaskStallMS * time.Millisecond
	}
	return time.Duration(c.TaskStallMS) * time.Millisecond
}

// SpreadThreshold returns the effective fairness spread limit in percent.
func (c Checks) SpreadThreshold() float64 {
	if c.SpreadPct == 0 {
		return DefaultSpreadPct
	}
	return c.SpreadPct
}

// Enabled reports whether the named check runs.
func (c Checks) Enabled(name string) bool {
	for _, d := range c.Disable {
		if d == name {
			return false
		}
	}
	return true
}

// EffectiveWeight is the cgroup's cpu.weight.
func (c *Cgroup) EffectiveWeight() int {
	if c.Weight == 0 {
		return DefaultWeight
	}
	return c.Weight
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Parse decodes and validates a scenario file. Unknown fields are errors so
// that typos do not silently fall back to defaults.
func Parse(b []byte) (*Scenario, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("scenario file is %d bytes, more than the %d-byte limit", len(b), MaxFileSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var s Scenario
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode scenario: %w", err)
	}
	if d.More() {
		return nil, errors.New("decode scenario: trailing data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Marshal encodes s as indented JSON with a trailing newline.
func Marshal(s *Scenario) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode scenario: %w", err)
	}
	return append(b, '\n'), nil
}

type cgState struct {
	workers  int
	work     Work
	frozen   bool // freeze_cgroup applied, thaw_cgroup not yet
	implicit bool // an ancestor of a nested cgroup, created without workers
}

// Validate checks the scenario's structure by replaying its steps: names,
// limits, cpuset syntax, work parameters, and that every operation refers
// to a cgroup that exists at that point. Cpusets are resolved only in the
// guest, against its topology.
func (s *Scenario) Validate() error {
	if s.Name != "" && !nameRE.MatchString(s.Name) {
		return fmt.Errorf("scenario name %q: use letters, digits, '_', '.', '-' (at most 64)", s.Name)
	}
	if len(s.Steps) == 0 {
		return errors.New("scenario has no steps")
	}
	if len(s.Steps) > MaxSteps {
		return fmt.Errorf("scenario has %d steps, at most %d allowed", len(s.Steps), MaxSteps)
	}
	if s.Checks.StarvationMS < 0 || s.Checks.TaskStallMS < 0 || s.Checks.SpreadPct < 0 || s.Checks.SpreadPct > 1000 {
		return errors.New("checks: thresholds must be positive (fairness_spread_pct at most 1000)")
	}
	for _, d := range s.Checks.Disable {
		switch d {
		case "starvation", "fairness", "isolation", "payload", "task_stall", "frozen", "policy":
		default:
			if !slices.Contains(WorkloadCheckNames, d) {
				return fmt.Errorf("checks.disable: unknown check %q (starvation, fairness, isolation, payload, task_stall, frozen, policy, %s)", d, strings.Join(WorkloadCheckNames, ", "))
			}
		}
	}
	if err := s.Checks.WorkloadChecks.validate(); err != nil {
		return fmt.Errorf("checks: %w", err)
	}
	live := map[string]*cgState{}
	total := 0
	for i := range s.Steps {
		st := &s.Steps[i]
		where := fmt.Sprintf("step %d", i)
		if st.Name != "" {
			where = fmt.Sprintf("step %d (%s)", i, st.Name)
		}
		if st.HoldMS < 0 || time.Duration(st.HoldMS)*time.Millisecond > MaxHold {
			return fmt.Errorf("%s: hold_ms %d out of range 0..%d", where, st.HoldMS, MaxHold.Milliseconds())
		}
		for j := range st.Cgroups {
			if err := addCgroup(live, &st.Cgroups[j], &total); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		for j := range st.Ops {
			if err := applyOp(live, &st.Ops[j], &total); err != nil {
				return fmt.Errorf("%s: op %d: %w", where, j, err)
			}
		}
		if err := checkPairs(live); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if s.Topology != "" {
		topo, err := TopologyOf(s.Topology)
		if err != nil {
			return err
		}
		if err := s.CheckTopology(topo); err != nil {
			return fmt.Errorf("on its topology %s: %w", s.Topology, err)
		}
	}
	return nil
}

func addCgroup(live map[string]*cgState, c *Cgroup, total *int) error {
	if err := checkCgroupName(c.Name); err != nil {
		return err
	}
	if _, ok := live[c.Name]; ok {
		return fmt.Errorf("cgroup %q already exists", c.Name)
	}
	if err := addParents(live, c.Name); err != nil {
		return err
	}
	if len(live) >= MaxCgroups {
		return fmt.Errorf("more than %d cgroups at once", MaxCgroups)
	}
	if _, err := ParseCpuset(c.Cpuset); err != nil {
		return fmt.Errorf("cgroup %q: %w", c.Name, err)
	}
	if c.Weight != 0 && (c.Weight < 1 || c.Weight > 10000) {
		return fmt.Errorf("cgroup %q: weight %d out of range 1..10000", c.Name, c.Weight)
	}
	if c.Workers < 0 || c.Workers > MaxWorkersPerCG {
		return fmt.Errorf("cgroup %q: workers %d out of range 0..%d", c.Name, c.Workers, MaxWorkersPerCG)
	}
	if err := c.Work.validate(c.Workers); err != nil {
		return fmt.Errorf("cgroup %q: %w", c.Name, err)
	}
	*total += c.Workers
	if *total > MaxCgroups*4 {
		return fmt.Errorf("more than %d workers started over the scenario", MaxCgroups*4)
	}
	live[c.Name] = &cgState{workers: c.Workers, work: c.Work}
	return nil
}

// checkPairs verifies that cross-cgroup ping-pong partners exist, are
// mutual, do the same work and have equal worker counts.
func checkPairs(live map[string]*cgState) error {
	for name, c := range live {
		if !c.work.Paired() || c.work.PairWith == "" {
			continue
		}
		p, ok := live[c.work.PairWith]
		if !ok {
			return fmt.Errorf("cgroup %q: pair_with %q does not exist (removing one half of a ping-pong pair is not allowed)", name, c.work.PairWith)
		}
		if p.work.Kind() != c.work.Kind() || p.work.PairWith != name {
			return fmt.Errorf("cgroup %q: pair_with %q must be a %s cgroup paired back with %q", name, c.work.PairWith, c.work.Type, name)
		}
		if p.work.Mode != c.work.Mode && !(p.work.Mode == "" && c.work.Mode == "pipe" || p.work.Mode == "pipe" && c.work.Mode == "") {
			return fmt.Errorf("cgroups %q and %q pair workers but use different modes (%q, %q)", name, c.work.PairWith, c.work.Mode, p.work.Mode)
		}
		if p.workers != c.workers {
			return fmt.Errorf("cgroups %q and %q pair workers one to one: counts %d and %d differ", name, c.work.PairWith, c.workers, p.workers)
		}
	}
	return nil
}

func applyOp(live map[string]*cgState, o *Op, total *int) error {
	need := func(name string) (*cgState, error) {
		c, ok := live[name]
		if !ok {
			return nil, fmt.Errorf("%s: cgroup %q does not exist at this step", o.Op, name)
		}
		return c, nil
	}
	if err := checkRepeat(o); err != nil {
		return err
	}
	switch o.Op {
	case OpAddCgroup:
		if o.Add == nil {
			return errors.New("add_cgroup needs \"add\": {cgroup}")
		}
		return addCgroup(live, o.Add, total)
	case OpRemoveCgroup:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		if err := checkRemove(live, o.Cgroup); err != nil {
			return err
		}
		delete(live, o.Cgroup)
	case OpSetCpuset:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		if _, err := ParseCpuset(o.Cpuset); err != nil && len(o.Cycle) == 0 {
			return fmt.Errorf("set_cpuset %q: %w", o.Cgroup, err)
		}
	case OpSetWeight:
		if _, err := need(o.Cgroup); err != nil {
			return err
		}
		if o.Weight < 1 || o.Weight > 10000 {
			return fmt.Errorf("set_weight %q: weight %d out of range 1..10000", o.Cgroup, o.Weight)
		}
	case OpMoveWorkers:
		from, err := need(o.Cgroup)
		if err != nil {
			return err
		}
		to, err := need(o.To)
		if err != nil {
			return err
		}
		if o.Cgroup == o.To {
			return errors.New("move_workers: source and destination are the same cgroup")
		}
		if err := checkMove(live, o); err != nil {
			return err
		}
		if from.work.GroupSize() > 1 || from.work.Type == WorkPayload {
			return fmt.Errorf("move_workers: %s workers of %q cannot be moved (pairs, groups and payloads stay put)", from.work.Type, o.Cgroup)
		}
		if o.Count < 0 || o.Count > from.workers {
			return fmt.Errorf("move_workers: count %d but %q has %d workers", o.Count, o.Cgroup, from.workers)
		}
		n := o.Count
		if n == 0 {
			n = from.workers
		}
		from.workers -= n
		to.workers += n
	case OpKillScheduler:
		switch o.Signal {
		case "", "KILL", "TERM", "INT", "SEGV":
		default:
			return fmt.Errorf("kill_scheduler: signal %q (KILL, TERM, INT, SEGV)", o.Signal)
		}
	default:
		return applyMoreOp(live, o)
	}
	return nil
}
