package report

import (
	"io"
	"math"
	"sort"

	"github.com/ktstr-go/ktstr/pkg/verdict"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Bounds on what one stream may make the report keep: the stream is
// untrusted.
const (
	maxCgroups         = 256  // cgroups with their own statistics
	maxWorkersPerGroup = 4096 // distinct worker ids counted per cgroup
	maxPlotCPUs        = 64   // CPUs (ids 0..63) in the runqueue plot
	maxRQSamples       = 1024 // monitor samples kept for the plot (downsampled beyond)
)

// CgroupStats is what the report shows of one cgroup over the whole run.
type CgroupStats struct {
	Cgroup     string  `json:"cgroup"`
	Workers    int     `json:"workers"`    // distinct worker ids seen
	Records    int     `json:"records"`    // worker_metrics frames
	CPUShare   float64 `json:"cpu_share"`  // sum cpu_time / sum wall of its workers' records
	MinShare   float64 `json:"min_share"`  // lowest share of one record
	MaxShare   float64 `json:"max_share"`  // highest
	Iterations uint64  `json:"iterations"` // sum over its workers' records
	SpreadPct  float64 `json:"spread_pct"` // largest cgroup_metrics spread_pct
	// Wake latency, largest over its workers (and cgroup_metrics for
	// p99), in microseconds; HasWake is false when the stream carried no
	// wake-latency field for the cgroup.
	HasWake   bool    `json:"has_wake"`
	WakeP50US float64 `json:"wake_p50_us,omitempty"`
	WakeP99US float64 `json:"wake_p99_us,omitempty"`
	WakeMaxUS float64 `json:"wake_max_us,omitempty"`
}

type cgroupAcc struct {
	CgroupStats
	cpuNS, wallNS float64
	workers       map[int]struct{}
	haveShare     bool
}

// RunQueue is the per-CPU runqueue depth (nr_running) over time from the
// monitor's samples, downsampled to at most maxRQSamples samples.
type RunQueue struct {
	CPUs    []int       `json:"cpus"`    // the CPU ids plotted, ascending
	TimeS   []float64   `json:"time_s"`  // each kept sample's elapsed time
	Depth   [][]float64 `json:"depth"`   // [CPU index][sample]; NaN-free: -1 where the CPU was absent
	Samples int64       `json:"samples"` // monitor samples in the stream
	Stride  int64       `json:"stride"`  // every Stride-th sample was kept
	Max     float64     `json:"max"`     // the largest depth kept
	// CPUsOmitted counts CPU ids at or above maxPlotCPUs seen in samples.
	CPUsOmitted int `json:"cpus_omitted,omitempty"`
}

type rqAcc struct {
	seen    int64
	stride  int64
	times   []float64
	rows    [][maxPlotCPUs]int32 // -1: CPU absent in that sample
	present [maxPlotCPUs]bool
	omitted map[int]struct{}
}

func (a *rqAcc) sample(s *wire.MonitorSample) {
	n := a.seen
	a.seen++
	if a.stride == 0 {
		a.stride = 1
	}
	if n%a.stride != 0 {
		return
	}
	if len(a.times) == maxRQSamples {
		// Keep every other kept sample and take half as many from now on.
		k := 0
		for i := 0; i < len(a.times); i += 2 {
			a.times[k], a.rows[k] = a.times[i], a.rows[i]
			k++
		}
		a.times, a.rows = a.times[:k], a.rows[:k]
		a.stride *= 2
		if n%a.stride != 0 {
			return
		}
	}
	var row [maxPlotCPUs]int32
	for i := range row {
		row[i] = -1
	}
	for _, c := range s.CPUs {
		if c.CPU < 0 {
			continue
		}
		if c.CPU >= maxPlotCPUs {
			if a.omitted == nil {
				a.omitted = map[int]struct{}{}
			}
			if len(a.omitted) < 1<<16 {
				a.omitted[c.CPU] = struct{}{}
			}
			continue
		}
		row[c.CPU] = int32(min(c.NrRunning, math.MaxInt32))
		a.present[c.CPU] = true
	}
	a.times = append(a.times, float64(s.ElapsedNS)/1e9)
	a.rows = append(a.rows, row)
}

func (a *rqAcc) result() *RunQueue {
	if a.seen == 0 {
		return nil
	}
	rq := &RunQueue{TimeS: a.times, Samples: a.seen, Stride: max(a.stride, 1), CPUsOmitted: len(a.omitted)}
	for c := 0; c < maxPlotCPUs; c++ {
		if !a.present[c] {
			continue
		}
		rq.CPUs = append(rq.CPUs, c)
		d := make([]float64, len(a.rows))
		for i, r := range a.rows {
			d[i] = float64(r[c])
			rq.Max = max(rq.Max, d[i])
		}
		rq.Depth = append(rq.Depth, d)
	}
	return rq
}

// streamData accumulates what a report takes from one stream besides the
// verdict.
type streamData struct {
	workerRecords              int64
	cgroupRecords              int64
	iterations, migrations     uint64
	cgIterations, cgMigrations uint64
	minWorkerIter              uint64
	haveWorkerIter             bool
	maxGapNS                   uint64
	maxSpread                  float64
	haveSpread                 bool
	wakeP99NS, wakeP50NS       uint64
	haveWakeP99, haveWakeP50   bool
	monitorSamples             int64
	maxDSQ                     uint32
	maxImbalance               float64
	violations                 int64
	cgroups                    map[string]*cgroupAcc
	cgroupsOmitted             int
	rq                         rqAcc
	bpf                        bpfAcc
}

func newStreamData() *streamData {
	return &streamData{cgroups: map[string]*cgroupAcc{}}
}

// scan reads a whole stream, judging it and collecting its metrics. Its
// error is a read error; corruption is part of the verdict.
func (sd *streamData) scan(r io.Reader) (verdict.Verdict, error) {
	return verdict.JudgeStream(r, sd.frame)
}

func (sd *streamData) frame(f *wire.Frame) {
	switch f.Type {
	case wire.TypeWorkerMetrics, wire.TypeCgroupMetrics, wire.TypeBPFProgStats:
	case wire.TypeMonitorSample, wire.TypeViolation:
		// Host frames count only when a host wrote them, as for the
		// verdict: a guest cannot forge the monitor's view.
		if f.Flags&wire.FlagHost == 0 {
			return
		}
	default:
		return
	}
	m, err := wire.Unmarshal(f.Type, f.Payload)
	if err != nil {
		return // the judge counts the bad payload
	}
	switch v := m.(type) {
	case wire.WorkerMetrics:
		sd.worker(&v)
	case wire.CgroupMetrics:
		sd.cgroup(&v)
	case wire.MonitorSample:
		sd.monitor(&v)
	case wire.Violation:
		sd.violations++
	case wire.BPFProgStats:
		sd.bpf.frame(&v)
	}
}

func (sd *streamData) acc(name string) *cgroupAcc {
	if a := sd.cgroups[name]; a != nil {
		return a
	}
	if len(sd.cgroups) >= maxCgroups {
		sd.cgroupsOmitted++
		return nil
	}
	a := &cgroupAcc{CgroupStats: CgroupStats{Cgroup: name}, workers: map[int]struct{}{}}
	sd.cgroups[name] = a
	return a
}

func (sd *streamData) worker(w *wire.WorkerMetrics) {
	sd.workerRecords++
	sd.iterations += w.Iterations
	sd.migrations += w.Migrations
	sd.maxGapNS = max(sd.maxGapNS, w.MaxGapNS)
	if w.ExitCode == nil {
		if !sd.haveWorkerIter || w.Iterations < sd.minWorkerIter {
			sd.minWorkerIter = w.Iterations
		}
		sd.haveWorkerIter = true
	}
	if w.WakeLatP99NS > 0 || w.WakeSamples > 0 {
		sd.haveWakeP99 = true
		sd.wakeP99NS = max(sd.wakeP99NS, w.WakeLatP99NS)
	}
	if w.WakeLatP50NS > 0 || w.WakeSamples > 0 {
		sd.haveWakeP50 = true
		sd.wakeP50NS = max(sd.wakeP50NS, w.WakeLatP50NS)
	}
	a := sd.acc(w.Cgroup)
	if a == nil {
		return
	}
	a.Records++
	a.Iterations += w.Iterations
	if len(a.workers) < maxWorkersPerGroup {
		a.workers[w.Worker] = struct{}{}
	}
	share := w.CPUShare
	if w.WallNS > 0 {
		share = float64(w.CPUTimeNS) / float64(w.WallNS)
	}
	if w.WallNS > 0 || w.CPUShare > 0 {
		if !a.haveShare {
			a.MinShare, a.MaxShare = share, share
		}
		a.MinShare, a.MaxShare = min(a.MinShare, share), max(a.MaxShare, share)
		a.haveShare = true
	}
	a.cpuNS += float64(w.CPUTimeNS)
	a.wallNS += float64(w.WallNS)
	if w.WakeLatP50NS > 0 || w.WakeLatP99NS > 0 || w.WakeLatMaxNS > 0 || w.WakeSamples > 0 {
		a.HasWake = true
		a.WakeP50US = max(a.WakeP50US, float64(w.WakeLatP50NS)/1e3)
		a.WakeP99US = max(a.WakeP99US, float64(w.WakeLatP99NS)/1e3)
		a.WakeMaxUS = max(a.WakeMaxUS, float64(w.WakeLatMaxNS)/1e3)
	}
}

func (sd *streamData) cgroup(c *wire.CgroupMetrics) {
	sd.cgroupRecords++
	sd.cgIterations += c.Iterations
	sd.cgMigrations += c.Migrations
	sd.maxGapNS = max(sd.maxGapNS, c.MaxGapNS)
	if !math.IsNaN(c.SpreadPct) && !math.IsInf(c.SpreadPct, 0) {
		sd.maxSpread = max(sd.maxSpread, c.SpreadPct)
		sd.haveSpread = true
	}
	if c.WakeLatP99NS > 0 {
		sd.haveWakeP99 = true
		sd.wakeP99NS = max(sd.wakeP99NS, c.WakeLatP99NS)
	}
	a := sd.acc(c.Cgroup)
	if a == nil {
		return
	}
	a.SpreadPct = max(a.SpreadPct, c.SpreadPct)
	if c.WakeLatP99NS > 0 {
		a.HasWake = true
		a.WakeP99US = max(a.WakeP99US, float64(c.WakeLatP99NS)/1e3)
	}
}

func (sd *streamData) monitor(s *wire.MonitorSample) {
	sd.monitorSamples++
	var lo, hi uint32
	n := 0
	for _, c := range s.CPUs {
		sd.maxDSQ = max(sd.maxDSQ, c.LocalDSQ)
		if c.Preempted {
			continue // the host starved this vCPU: its depth says nothing of the scheduler
		}
		if n == 0 {
			lo, hi = c.NrRunning, c.NrRunning
		}
		lo, hi = min(lo, c.NrRunning), max(hi, c.NrRunning)
		n++
	}
	if n > 1 {
		sd.maxImbalance = max(sd.maxImbalance, float64(hi)/float64(max(lo, 1)))
	}
	sd.rq.sample(s)
}

// metrics stores the stream's metrics in m (only those it has data for).
func (sd *streamData) metrics(m map[string]float64) {
	switch {
	case sd.workerRecords > 0:
		m[MetricIterations] = float64(sd.iterations)
		m[MetricMigrations] = float64(sd.migrations)
	case sd.cgroupRecords > 0:
		m[MetricIterations] = float64(sd.cgIterations)
		m[MetricMigrations] = float64(sd.cgMigrations)
	}
	if sd.haveWorkerIter {
		m[MetricIterPerWorker] = float64(sd.minWorkerIter)
	}
	if sd.workerRecords+sd.cgroupRecords > 0 {
		m[MetricGap] = float64(sd.maxGapNS) / 1e6
	}
	if sd.haveSpread {
		m[MetricSpread] = sd.maxSpread
	}
	if sd.haveWakeP99 {
		m[MetricWakeP99] = float64(sd.wakeP99NS) / 1e3
	}
	if sd.haveWakeP50 {
		m[MetricWakeP50] = float64(sd.wakeP50NS) / 1e3
	}
	if sd.monitorSamples > 0 {
		m[MetricDSQ] = float64(sd.maxDSQ)
		m[MetricImbalance] = sd.maxImbalance
	}
	m[MetricViolations] = float64(sd.violations)
	sd.bpf.metrics(m)
}

// cgroupStats returns the per-cgroup statistics, sorted by name.
func (sd *streamData) cgroupStats() []CgroupStats {
	out := make([]CgroupStats, 0, len(sd.cgroups))
	for _, a := range sd.cgroups {
		s := a.CgroupStats
		s.Workers = len(a.workers)
		if a.wallNS > 0 {
			s.CPUShare = a.cpuNS / a.wallNS
		} else if a.haveShare {
			s.CPUShare = (a.MinShare + a.MaxShare) / 2
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cgroup < out[j].Cgroup })
	return out
}
