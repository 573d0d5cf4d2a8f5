package decode

import (
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestWorkloadMetricsLines: the workload metrics show on worker and cgroup
// lines when the frames carry them, and old frames render as before.
func TestWorkloadMetricsLines(t *testing.T) {
	cases := []struct {
		m       wire.Message
		want    []string
		notWant []string
	}{
		{wire.WorkerMetrics{Cgroup: "cg0", Work: "pipe_io", Iterations: 1445, CPUs: []int{0, 1}, Unit: "round trips",
			RatePerS: 1090.04, RatePerCPUS: 49526.55, OffCPUNS: 1_200_000_000, RunDelayNS: 632_000_000, Timeslices: 3000,
			MigrationRatio: 0.001, WakeSamples: 1445, WakeLatP50NS: 70_000, WakeLatP99NS: 5_487_000, WakeLatMaxNS: 12_999_000, WakeLatCV: 1.77},
			[]string{`unit="round trips"`, "rate=1090/s", "rate_cpu=49526.6/cpu-s", "off_cpu=1200ms", "run_delay=632ms", "slices=3000",
				"mig_ratio=0.001", "wake_p50=70us", "wake_p99=5ms", "wake_cv=1.77"}, nil},
		{wire.WorkerMetrics{Cgroup: "cg0", Work: "spin", Iterations: 5, CPUs: []int{0}},
			[]string{"work=spin", "iter=5"}, []string{"unit=", "rate=", "run_delay=", "mig_ratio=", "wake_cv="}},
		{wire.CgroupMetrics{Cgroup: "cg0", Workers: 4, OffCPUSpreadPct: 12.34, ThroughputCV: 0.05, MinRatePerS: 12.25, MinRatePerCPUS: 100,
			MigrationRatio: 0.2, OffCPUNS: 3e9, RunDelayNS: 2e9, MaxRunDelayPct: 33.3, WakeSamples: 10, WakeLatP50NS: 50_000, WakeLatMaxNS: 9e6, WakeLatCV: 0.5},
			[]string{"off_cpu_spread=12.3pt", "tput_cv=0.05", "min_rate=12.3/s", "min_rate_cpu=100/cpu-s", "mig_ratio=0.2", "off_cpu=3000ms",
				"run_delay=2000ms", "max_run_delay=33.3%", "wake_p50=50us", "wake_max=9ms", "wake_cv=0.5", "wake_samples=10"}, nil},
		{wire.CgroupMetrics{Cgroup: "cg0", Workers: 2, SpreadPct: 3},
			[]string{"spread=3.0%"}, []string{"off_cpu", "tput_cv", "wake_samples"}},
	}
	for _, c := range cases {
		got := string(appendSummary(nil, c.m))
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s\nlacks %q", got, w)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(got, w) {
				t.Errorf("%s\nhas %q", got, w)
			}
		}
	}
}
