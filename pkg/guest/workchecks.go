package guest

import (
	"fmt"
	"math"
	"time"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"github.com/ktstr-go/ktstr/pkg/workload"
)

// peerKey groups the workers whose rates and off-CPU times compare: the
// same work type and the same role (a fan-out messenger's unit differs
// from its receivers').
type peerKey struct{ work, unit string }

// workloadMetrics fills the workload fields of a cgroup's metrics from its
// measured (non-payload) workers:
//
//   - off_cpu_spread_pct: upstream ktstr's fairness figure, the largest
//     (over groups of peers) max - min of off-CPU % = (wall - cpu) / wall;
//   - throughput_cv: the largest (over groups of peers with CPU time) CV
//     of iterations per CPU second;
//   - migration_ratio: the cgroup's migrations over its iterations;
//   - run delay, rates and wake latencies: sums, extremes and the median
//     of the workers' p50.
//
// It returns the shortest measurement window among those workers.
func workloadMetrics(m *wire.CgroupMetrics, ws []wire.WorkerMetrics) time.Duration {
	offPct := map[peerKey][]float64{}
	rates := map[peerKey][]float64{}
	var p50s []uint64
	var iters, migs uint64
	minWall := time.Duration(math.MaxInt64)
	first := true
	for _, w := range ws {
		if w.Work == scenario.WorkPayload {
			continue
		}
		k := peerKey{w.Work, w.Unit}
		iters += w.Iterations
		migs += w.Migrations
		m.OffCPUNS += w.OffCPUNS
		m.RunDelayNS += w.RunDelayNS
		if w.WallNS > 0 {
			minWall = min(minWall, time.Duration(w.WallNS))
			offPct[k] = append(offPct[k], float64(w.OffCPUNS)/float64(w.WallNS)*100)
			m.MaxRunDelayPct = max(m.MaxRunDelayPct, workload.Round3(float64(w.RunDelayNS)/float64(w.WallNS)*100))
			rate := float64(w.Iterations) / (float64(w.WallNS) / 1e9)
			if first || rate < m.MinRatePerS {
				m.MinRatePerS = workload.Round3(rate)
			}
			perCPU := 0.0
			if w.CPUTimeNS > 0 {
				perCPU = float64(w.Iterations) / (float64(w.CPUTimeNS) / 1e9)
				rates[k] = append(rates[k], perCPU)
			}
			if first || perCPU < m.MinRatePerCPUS {
				m.MinRatePerCPUS = workload.Round3(perCPU)
			}
			first = false
		}
		if w.WakeSamples > 0 {
			p50s = append(p50s, w.WakeLatP50NS)
			m.WakeSamples += w.WakeSamples
			m.WakeLatMaxNS = max(m.WakeLatMaxNS, w.WakeLatMaxNS)
			m.WakeLatCV = max(m.WakeLatCV, w.WakeLatCV)
		}
	}
	m.WakeLatP50NS = workload.Median(p50s)
	m.MigrationRatio = workload.MigrationRatio(migs, iters)
	for _, v := range offPct {
		if len(v) >= 2 {
			lo, hi := v[0], v[0]
			for _, x := range v {
				lo, hi = min(lo, x), max(hi, x)
			}
			m.OffCPUSpreadPct = max(m.OffCPUSpreadPct, math.Round((hi-lo)*10)/10)
		}
	}
	for _, v := range rates {
		m.ThroughputCV = max(m.ThroughputCV, workload.Round3(workload.CV(v)))
	}
	return minWall
}

// peerCount is the size of the largest group of peers.
func peerCount(ws []wire.WorkerMetrics) int {
	n := map[peerKey]int{}
	best := 0
	for _, w := range ws {
		if w.Work != scenario.WorkPayload {
			k := peerKey{w.Work, w.Unit}
			n[k]++
			best = max(best, n[k])
		}
	}
	return best
}

// evaluateWorkload fills the cgroup's workload metrics and runs the
// workload checks that the scenario turned on (scenario.WorkloadChecks).
func evaluateWorkload(step int, cg *CgroupSample, m *wire.CgroupMetrics, chk scenario.Checks) []wire.CheckResult {
	minWall := workloadMetrics(m, cg.Workers)
	var res []wire.CheckResult
	base := wire.CheckResult{Cgroup: cg.Name, Step: step}
	add := func(name, unit string, thr, obs float64, pass bool, detail string) {
		r := base
		r.Name, r.Unit, r.Threshold, r.Observed, r.Pass, r.Detail = name, unit, thr, obs, pass, detail
		res = append(res, r)
	}
	measured := peerCount(cg.Workers) > 0
	comparable := peerCount(cg.Workers) >= 2 && minWall >= MinFairnessWindow
	if thr, on := chk.Threshold(scenario.CheckMigrationRatio); on && measured {
		add(scenario.CheckMigrationRatio, "migrations/iteration", thr, m.MigrationRatio, m.MigrationRatio <= thr,
			fmt.Sprintf("%d migrations over %d iterations", m.Migrations, m.Iterations))
	}
	if thr, on := chk.Threshold(scenario.CheckThroughputCV); on && comparable {
		add(scenario.CheckThroughputCV, "cv", thr, m.ThroughputCV, m.ThroughputCV <= thr,
			"coefficient of variation of iterations per CPU second across the cgroup's workers")
	}
	slowest := func(perCPU bool) string {
		for _, w := range cg.Workers {
			if w.Work == scenario.WorkPayload {
				continue
			}
			v, lim := w.RatePerS, m.MinRatePerS
			if perCPU {
				v, lim = w.RatePerCPUS, m.MinRatePerCPUS
			}
			if v <= lim {
				return fmt.Sprintf("slowest: worker %d (pid %d) %s, %d %s", w.Worker, w.PID, w.Work, w.Iterations, w.Unit)
			}
		}
		return ""
	}
	if thr, on := chk.Threshold(scenario.CheckWorkRate); on && measured {
		add(scenario.CheckWorkRate, "iterations/cpu-s", thr, m.MinRatePerCPUS, m.MinRatePerCPUS >= thr, slowest(true))
	}
	if thr, on := chk.Threshold(scenario.CheckIterationRate); on && measured {
		add(scenario.CheckIterationRate, "iterations/s", thr, m.MinRatePerS, m.MinRatePerS >= thr, slowest(false))
	}
	if thr, on := chk.Threshold(scenario.CheckWakeLatency); on && m.WakeSamples > 0 {
		obs := float64(m.WakeLatP99NS) / 1e3
		add(scenario.CheckWakeLatency, "us", thr, math.Round(obs*10)/10, obs <= thr,
			fmt.Sprintf("largest p99 wake latency of the workers (%d samples; p50 %d us, max %d us)", m.WakeSamples, m.WakeLatP50NS/1e3, m.WakeLatMaxNS/1e3))
	}
	if thr, on := chk.Threshold(scenario.CheckWakeLatencyCV); on && m.WakeSamples > 0 {
		add(scenario.CheckWakeLatencyCV, "cv", thr, m.WakeLatCV, m.WakeLatCV <= thr, "largest coefficient of variation of a worker's wake latencies")
	}
	if thr, on := chk.Threshold(scenario.CheckRunDelay); on && measured {
		add(scenario.CheckRunDelay, "%", thr, m.MaxRunDelayPct, m.MaxRunDelayPct <= thr,
			"largest share of a worker's window spent runnable but waiting for a CPU (schedstat run delay)")
	}
	if thr, on := chk.Threshold(scenario.CheckOffCPUSpread); on && comparable {
		add(scenario.CheckOffCPUSpread, "points", thr, m.OffCPUSpreadPct, m.OffCPUSpreadPct <= thr,
			"max - min of the workers' off-CPU % (upstream ktstr's fairness spread)")
	}
	return res
}
