package guest

import (
	"testing"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

func wm(work, unit string, iters, cpuMS, wallMS, mig, delayMS uint64, p50, p99 uint64, cv float64) wire.WorkerMetrics {
	w := wire.WorkerMetrics{Work: work, Unit: unit, Iterations: iters, CPUTimeNS: cpuMS * 1e6, WallNS: wallMS * 1e6,
		Migrations: mig, RunDelayNS: delayMS * 1e6, OffCPUNS: (wallMS - min(cpuMS, wallMS)) * 1e6}
	if wallMS > 0 {
		w.RatePerS = float64(iters) / (float64(wallMS) / 1e3)
	}
	if cpuMS > 0 {
		w.RatePerCPUS = float64(iters) / (float64(cpuMS) / 1e3)
	}
	if p99 > 0 {
		w.WakeSamples, w.WakeLatP50NS, w.WakeLatP99NS, w.WakeLatMaxNS, w.WakeLatCV = 100, p50, p99, p99*2, cv
	}
	return w
}

func TestWorkloadMetrics(t *testing.T) {
	cg := CgroupSample{Name: "cg", Cpuset: []int{0, 1}, Workers: []wire.WorkerMetrics{
		wm("spin", "spin bursts", 1000, 900, 1000, 10, 100, 0, 0, 0),
		wm("spin", "spin bursts", 500, 500, 1000, 30, 400, 0, 0, 0),
		{Work: "payload", CPUTimeNS: 1e9, WallNS: 2e9, ExitCode: new(int)},
	}}
	m, _ := Evaluate(0, &cg, scenario.Checks{})
	// off-CPU % 10 and 50: 40 points apart; rates per CPU second 1111.1
	// and 1000: CV 0.053; 40 migrations over 1500 iterations.
	if m.OffCPUSpreadPct != 40 || m.ThroughputCV != 0.053 || m.MigrationRatio != 0.027 {
		t.Errorf("spread %v cv %v ratio %v", m.OffCPUSpreadPct, m.ThroughputCV, m.MigrationRatio)
	}
	if m.OffCPUNS != 600e6 || m.RunDelayNS != 500e6 || m.MaxRunDelayPct != 40 || m.MinRatePerS != 500 || m.MinRatePerCPUS != 1000 {
		t.Errorf("sums/extremes: %+v", m)
	}
	if m.WakeSamples != 0 || m.WakeLatP50NS != 0 {
		t.Errorf("wake figures without samples: %+v", m)
	}
	// Our fairness spread on the same workers: CPU shares 0.9 and 0.5,
	// (0.9-0.5)/0.7 = 57.1 %, where upstream's off-CPU spread says 40.
	if m.SpreadPct != 57.1 {
		t.Errorf("fairness spread %v", m.SpreadPct)
	}
}

func TestWorkloadChecks(t *testing.T) {
	pair := []wire.WorkerMetrics{
		wm("pipe_io", "round trips", 1000, 200, 2000, 100, 50, 40_000, 900_000, 2.5),
		wm("pipe_io", "round trips", 1000, 250, 2000, 300, 600, 60_000, 300_000, 1.5),
	}
	fan := []wire.WorkerMetrics{
		wm("futex_fan_out", "wakes sent", 9000, 1800, 2000, 0, 10, 0, 0, 0),
		wm("futex_fan_out", "wakes received", 90, 20, 2000, 5, 10, 50_000, 80_000, 0.5),
	}
	cases := []struct {
		name    string
		workers []wire.WorkerMetrics
		chk     scenario.WorkloadChecks
		disable []string
		want    map[string]bool // check name -> pass; absent checks must not run
	}{
		{"all off by default", pair, scenario.WorkloadChecks{}, nil, map[string]bool{}},
		{"pass", pair, scenario.WorkloadChecks{MaxMigrationRatio: 0.5, MaxThroughputCV: 0.2, MinWorkRate: 3000, MinIterationRate: 400,
			MaxWakeP99US: 1000, MaxWakeLatencyCV: 3, MaxRunDelayPct: 40, MaxOffCPUSpreadPct: 5}, nil,
			map[string]bool{"migration_ratio": true, "throughput_cv": true, "work_rate": true, "iteration_rate": true,
				"wake_latency": true, "wake_latency_cv": true, "run_delay": true, "off_cpu_spread": true}},
		{"fail", pair, scenario.WorkloadChecks{MaxMigrationRatio: 0.1, MaxThroughputCV: 0.05, MinWorkRate: 4500, MinIterationRate: 600,
			MaxWakeP99US: 500, MaxWakeLatencyCV: 2, MaxRunDelayPct: 20, MaxOffCPUSpreadPct: 1}, nil,
			map[string]bool{"migration_ratio": false, "throughput_cv": false, "work_rate": false, "iteration_rate": false,
				"wake_latency": false, "wake_latency_cv": false, "run_delay": false, "off_cpu_spread": false}},
		{"disabled", pair, scenario.WorkloadChecks{MaxMigrationRatio: 0.1, MaxWakeP99US: 500}, []string{"wake_latency"},
			map[string]bool{"migration_ratio": false}},
		// A messenger and a receiver are not peers: nothing to compare.
		{"roles are not peers", fan, scenario.WorkloadChecks{MaxThroughputCV: 0.01, MaxOffCPUSpreadPct: 1, MaxWakeP99US: 100}, nil,
			map[string]bool{"wake_latency": true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cg := CgroupSample{Name: "cg", Cpuset: []int{0, 1}, Workers: append([]wire.WorkerMetrics(nil), c.workers...)}
			_, res := Evaluate(1, &cg, scenario.Checks{WorkloadChecks: c.chk, Disable: c.disable})
			got := map[string]bool{}
			for _, r := range res {
				switch r.Name {
				case CheckStarvation, CheckFairness, CheckIsolation:
					continue
				}
				got[r.Name] = r.Pass
				if r.Cgroup != "cg" || r.Step != 1 || r.Unit == "" {
					t.Errorf("%s: incomplete result %+v", r.Name, r)
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("checks run: %v, want %v", got, c.want)
			}
			for n, p := range c.want {
				if g, ok := got[n]; !ok || g != p {
					t.Errorf("%s: pass=%v (ran %v), want %v", n, g, ok, p)
				}
			}
		})
	}
}
