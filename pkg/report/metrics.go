package report

import (
	"fmt"
	"strconv"
)

// Metric names: each is a number a variant's stream (or meta.json) gives,
// and that Compare gates. The names follow upstream ktstr's stats compare
// where the quantity is the same.
const (
	MetricWall          = "wall_s"
	MetricIterations    = "total_iterations"
	MetricIterPerWorker = "worst_iterations_per_worker"
	MetricSpread        = "worst_spread"
	MetricGap           = "worst_gap_ms"
	MetricMigrations    = "total_migrations"
	MetricWakeP99       = "worst_p99_wake_latency_us"
	MetricWakeP50       = "worst_median_wake_latency_us"
	MetricDSQ           = "max_dsq_depth"
	MetricImbalance     = "max_imbalance_ratio"
	MetricViolations    = "violations"
)

// MetricDef describes a metric: which way is better, and the default
// gates a change must cross (both) to count in Compare.
type MetricDef struct {
	Name         string  `json:"name"`
	Unit         string  `json:"unit"`
	HigherBetter bool    `json:"higher_better"`
	Abs          float64 `json:"abs"` // |B-A| at least this
	Rel          float64 `json:"rel"` // |B-A|/|A| at least this (a fraction: 0.25 = 25%)
	Doc          string  `json:"doc"`
}

// Metrics returns the metric table, in the order reports show it. The
// caller owns the copy.
func Metrics() []MetricDef {
	return []MetricDef{
		{MetricWall, "s", false, 5, 0.25, "wall time of the variant (meta.json wall_s, else the VMM's vm_exit wall_ns)"},
		{MetricIterations, "", true, 100, 0.10, "sum of iterations over every worker_metrics frame"},
		{MetricIterPerWorker, "", true, 10, 0.10, "fewest iterations of one worker over one step (payload workers excluded)"},
		{MetricSpread, "%", false, 5, 0.25, "largest cgroup_metrics spread_pct (fairness spread)"},
		{MetricGap, "ms", false, 500, 0.50, "longest time a worker was off CPU (max_gap_ns of worker and cgroup metrics)"},
		{MetricMigrations, "", false, 10, 0.30, "sum of migrations over every worker_metrics frame"},
		{MetricWakeP99, "us", false, 50, 0.25, "largest wake-latency p99 of a worker or cgroup (only when the stream has wake-latency fields)"},
		{MetricWakeP50, "us", false, 20, 0.25, "largest wake-latency median of a worker (only when the stream has it)"},
		{MetricDSQ, "", false, 10, 0.50, "deepest local DSQ of a CPU in the monitor's samples"},
		{MetricImbalance, "x", false, 1, 0.25, "largest ratio, over monitor samples, of the busiest CPU's nr_running to the idlest's (at least 1)"},
		{MetricViolations, "", false, 1, 0.50, "monitor violations in the stream"},
		{MetricVerifiedInsns, "", false, 100, 0.05, "sum of the BPF verifier's verified instructions over the scheduler's programs (the first bpf_prog_stats frame; only when the kernel reports them, Linux 5.16 and later); the same scheduler build and kernel give the same count, so the gates are small"},
	}
}

// metricDef returns the definition of name.
func metricDef(name string) (MetricDef, bool) {
	for _, m := range Metrics() {
		if m.Name == name {
			return m, true
		}
	}
	return MetricDef{}, false
}

// ManEntry is the metric's entry in ktstr-report(1), which its test
// checks against this table.
func ManEntry(m MetricDef) string {
	unit, dir := m.Unit, "lower"
	if unit == "" {
		unit = "a count"
	}
	if m.HigherBetter {
		dir = "higher"
	}
	return fmt.Sprintf(".TP\n.B %s\n(%s; %s is better; default gates %s and %s%%)\n%s.\n",
		m.Name, unit, dir, strconv.FormatFloat(m.Abs, 'g', -1, 64), strconv.FormatFloat(m.Rel*100, 'g', -1, 64), m.Doc)
}
