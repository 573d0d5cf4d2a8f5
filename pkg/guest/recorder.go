package guest

import (
	"slices"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// maxLatSamples bounds the wake-latency reservoir per report interval.
const maxLatSamples = 100000

// maxCPUs bounds the CPU numbers a recorder tracks.
const maxCPUs = 4096

// Recorder accumulates one worker's measurements between two reports, all
// on the guest's CLOCK_MONOTONIC in nanoseconds. It allocates nothing in
// Mark, so the measured loop stays steady.
type Recorder struct {
	start, last int64
	cpuStart    int64
	iters       uint64
	maxGap      int64
	maxGapCPU   int
	cpus        [maxCPUs / 64]uint64
	lastCPU     int
	migrations  uint64
	lat         []int64
	latN        uint64
	latMax      int64
	rng         uint64
}

// NewRecorder starts an interval at now with the thread's CPU time cpuNS.
func NewRecorder(now, cpuNS int64) *Recorder {
	r := &Recorder{lastCPU: -1, rng: 0x9E3779B97F4A7C15, lat: make([]int64, 0, 1024)}
	r.Reset(now, cpuNS)
	return r
}

// Reset begins a new interval. The last CPU is kept, so a migration right
// after a reset still counts.
func (r *Recorder) Reset(now, cpuNS int64) {
	r.start, r.last, r.cpuStart = now, now, cpuNS
	r.iters, r.maxGap, r.maxGapCPU, r.migrations = 0, 0, -1, 0
	r.cpus = [maxCPUs / 64]uint64{}
	r.lat = r.lat[:0]
	r.latN, r.latMax = 0, 0
}

// Mark records one completed unit of work ending at now on cpu: the gap
// since the previous mark (or the interval start) and CPU changes.
func (r *Recorder) Mark(now int64, cpu int) {
	r.iters++
	if g := now - r.last; g > r.maxGap {
		r.maxGap, r.maxGapCPU = g, cpu
	}
	r.last = now
	if cpu >= 0 && cpu < maxCPUs {
		r.cpus[cpu/64] |= 1 << (cpu % 64)
	}
	if r.lastCPU >= 0 && cpu != r.lastCPU {
		r.migrations++
	}
	r.lastCPU = cpu
}

// Skip moves the gap reference to t without counting work: used after an
// intended sleep, so that only oversleep counts as a gap.
func (r *Recorder) Skip(t int64) {
	if t > r.last {
		r.last = t
	}
}

// Wake records one wake latency sample (reservoir sampling beyond the cap).
func (r *Recorder) Wake(ns int64) {
	if ns < 0 {
		ns = 0
	}
	r.latN++
	r.latMax = max(r.latMax, ns)
	if len(r.lat) < maxLatSamples {
		r.lat = append(r.lat, ns)
		return
	}
	r.rng ^= r.rng << 13
	r.rng ^= r.rng >> 7
	r.rng ^= r.rng << 17
	if j := r.rng % r.latN; j < maxLatSamples {
		r.lat[j] = ns
	}
}

// Snapshot reports the interval up to now; the trailing time since the
// last mark counts as a gap, so a worker that stopped running shows it.
func (r *Recorder) Snapshot(now, cpuNS int64) wire.WorkerMetrics {
	m := wire.WorkerMetrics{
		Iterations: r.iters,
		Migrations: r.migrations,
		MaxGapCPU:  r.maxGapCPU,
	}
	gap, gapCPU := r.maxGap, r.maxGapCPU
	if g := now - r.last; g > gap {
		gap, gapCPU = g, r.lastCPU
	}
	m.MaxGapNS, m.MaxGapCPU = uint64(max(gap, 0)), gapCPU
	m.WallNS = uint64(max(now-r.start, 0))
	m.CPUTimeNS = uint64(max(cpuNS-r.cpuStart, 0))
	if m.WallNS > 0 {
		m.CPUShare = float64(m.CPUTimeNS) / float64(m.WallNS)
	}
	m.CPUs = []int{}
	for i, w := range r.cpus {
		for b := 0; w != 0; b++ {
			if w&1 != 0 {
				m.CPUs = append(m.CPUs, i*64+b)
			}
			w >>= 1
		}
	}
	if r.latN > 0 {
		s := slices.Clone(r.lat)
		slices.Sort(s)
		m.WakeSamples = r.latN
		m.WakeLatP50NS = uint64(percentile(s, 50))
		m.WakeLatP99NS = uint64(percentile(s, 99))
		m.WakeLatMaxNS = uint64(r.latMax)
	}
	return m
}

// percentile returns the nearest-rank p-th percentile of sorted s.
func percentile(s []int64, p int) int64 {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[min(i, len(s))-1]
}
