package scenario

import (
	"fmt"
	"math"
)

// Names of the workload checks. Each is off unless its threshold is set
// (upstream ktstr has them off by default too); "disable" turns one off
// again, e.g. to override a catalog scenario from a copy.
const (
	CheckMigrationRatio = "migration_ratio"
	CheckThroughputCV   = "throughput_cv"
	CheckWorkRate       = "work_rate"
	CheckIterationRate  = "iteration_rate"
	CheckWakeLatency    = "wake_latency"
	CheckWakeLatencyCV  = "wake_latency_cv"
	CheckRunDelay       = "run_delay"
	CheckOffCPUSpread   = "off_cpu_spread"
)

// WorkloadCheckNames lists the workload checks in documentation order.
var WorkloadCheckNames = []string{CheckMigrationRatio, CheckThroughputCV, CheckWorkRate, CheckIterationRate,
	CheckWakeLatency, CheckWakeLatencyCV, CheckRunDelay, CheckOffCPUSpread}

// WorkloadChecks are the thresholds of the checks on the workload metrics
// (man/ktstr-scenario.5). Zero means the check is off.
type WorkloadChecks struct {
	MaxMigrationRatio  float64 `json:"max_migration_ratio,omitempty"`     // migrations per iteration, per cgroup
	MaxThroughputCV    float64 `json:"max_throughput_cv,omitempty"`       // CV of iterations per CPU second across workers
	MinWorkRate        float64 `json:"min_work_rate,omitempty"`           // iterations per CPU second, every worker
	MinIterationRate   float64 `json:"min_iteration_rate,omitempty"`      // iterations per wall second, every worker
	MaxWakeP99US       float64 `json:"max_wake_latency_p99_us,omitempty"` // any worker's p99 wake latency
	MaxWakeLatencyCV   float64 `json:"max_wake_latency_cv,omitempty"`     // any worker's wake latency CV
	MaxRunDelayPct     float64 `json:"max_run_delay_pct,omitempty"`       // any worker's schedstat run delay / wall
	MaxOffCPUSpreadPct float64 `json:"max_off_cpu_spread_pct,omitempty"`  // upstream's fairness: max - min off-CPU %
}

// Threshold returns the threshold of the named workload check and whether
// it is on (set and not disabled).
func (c Checks) Threshold(name string) (float64, bool) {
	w := c.WorkloadChecks
	v := map[string]float64{
		CheckMigrationRatio: w.MaxMigrationRatio, CheckThroughputCV: w.MaxThroughputCV,
		CheckWorkRate: w.MinWorkRate, CheckIterationRate: w.MinIterationRate,
		CheckWakeLatency: w.MaxWakeP99US, CheckWakeLatencyCV: w.MaxWakeLatencyCV,
		CheckRunDelay: w.MaxRunDelayPct, CheckOffCPUSpread: w.MaxOffCPUSpreadPct,
	}[name]
	return v, v > 0 && c.Enabled(name)
}

func (w WorkloadChecks) validate() error {
	for _, f := range []struct {
		name string
		v    float64
		max  float64
	}{
		{"max_migration_ratio", w.MaxMigrationRatio, 1e6},
		{"max_throughput_cv", w.MaxThroughputCV, 1e3},
		{"min_work_rate", w.MinWorkRate, 1e12},
		{"min_iteration_rate", w.MinIterationRate, 1e12},
		{"max_wake_latency_p99_us", w.MaxWakeP99US, 1e9},
		{"max_wake_latency_cv", w.MaxWakeLatencyCV, 1e3},
		{"max_run_delay_pct", w.MaxRunDelayPct, 100},
		{"max_off_cpu_spread_pct", w.MaxOffCPUSpreadPct, 100},
	} {
		if f.v < 0 || f.v > f.max || math.IsNaN(f.v) {
			return fmt.Errorf("%s %g out of range 0..%g (0: off)", f.name, f.v, f.max)
		}
	}
	return nil
}
