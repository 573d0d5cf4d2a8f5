package workload

import (
	"slices"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// maxLatSamples bounds the wake-latency reservoir per report interval.
const maxLatSamples = 100000

// maxCPUs bounds the CPU numbers a recorder tracks.
const maxCPUs = 4096

// Stamp is one reading of a thread's clocks: CLOCK_MONOTONIC, its CPU
// time, and its schedstat (/proc/thread-self/schedstat: time spent
// runnable but waiting for a CPU, and the number of times it ran). All in
// nanoseconds; RunDelay is -1 when the kernel has no schedstat.
type Stamp struct {
	Mono       int64
	CPU        int64
	RunDelay   int64
	Timeslices int64
}

// Recorder accumulates one worker's measurements between two reports, all
// on the guest's CLOCK_MONOTONIC in nanoseconds. It allocates nothing in
// Mark, so the measured loop stays steady.
type Recorder struct {
	start, last int64
	base        Stamp
	extraCPU    int64
	unit        string
	iters       uint64
	maxGap      int64
	maxGapCPU   int
	cpus        [maxCPUs / 64]uint64
	lastCPU     int
	migrations  uint64
	lat         []int64
	latN        uint64
	latMax      int64
	latSum      float64
	latSumSq    float64
	rng         uint64
}

// NewRecorder starts an interval at the stamp.
func NewRecorder(at Stamp) *Recorder {
	r := &Recorder{lastCPU: -1, rng: 0x9E3779B97F4A7C15, lat: make([]int64, 0, 1024)}
	r.Reset(at)
	return r
}

// SetUnit names what one iteration counts (reported as the metrics' unit).
func (r *Recorder) SetUnit(u string) { r.unit = u }

// Reset begins a new interval. The last CPU is kept, so a migration right
// after a reset still counts.
func (r *Recorder) Reset(at Stamp) {
	r.start, r.last, r.base = at.Mono, at.Mono, at
	r.extraCPU = 0
	r.iters, r.maxGap, r.maxGapCPU, r.migrations = 0, 0, -1, 0
	r.cpus = [maxCPUs / 64]uint64{}
	r.lat = r.lat[:0]
	r.latN, r.latMax, r.latSum, r.latSumSq = 0, 0, 0, 0
}

// Mark records one completed unit of work ending at now on cpu: the gap
// since the previous mark (or the interval start) and CPU changes.
func (r *Recorder) Mark(now int64, cpu int) { r.MarkN(now, cpu, 1) }

// MarkN is Mark for n units of work done since the previous mark.
func (r *Recorder) MarkN(now int64, cpu int, n uint64) {
	r.iters += n
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

// AddCPU counts CPU time spent outside the thread (custom work's child
// programs) as the worker's.
func (r *Recorder) AddCPU(ns int64) {
	if ns > 0 {
		r.extraCPU += ns
	}
}

// Wake records one wake latency sample (reservoir sampling beyond the cap).
func (r *Recorder) Wake(ns int64) {
	if ns < 0 {
		ns = 0
	}
	r.latN++
	r.latMax = max(r.latMax, ns)
	r.latSum += float64(ns)
	r.latSumSq += float64(ns) * float64(ns)
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

// Snapshot reports the interval up to the stamp; the trailing time since
// the last mark counts as a gap, so a worker that stopped running shows it.
func (r *Recorder) Snapshot(at Stamp) wire.WorkerMetrics {
	now := at.Mono
	m := wire.WorkerMetrics{
		Iterations: r.iters,
		Migrations: r.migrations,
		MaxGapCPU:  r.maxGapCPU,
		Unit:       r.unit,
	}
	gap, gapCPU := r.maxGap, r.maxGapCPU
	if g := now - r.last; g > gap {
		gap, gapCPU = g, r.lastCPU
	}
	m.MaxGapNS, m.MaxGapCPU = uint64(max(gap, 0)), gapCPU
	m.WallNS = uint64(max(now-r.start, 0))
	m.CPUTimeNS = uint64(max(at.CPU-r.base.CPU+r.extraCPU, 0))
	if m.WallNS > 0 {
		m.CPUShare = float64(m.CPUTimeNS) / float64(m.WallNS)
		m.RatePerS = Round3(float64(m.Iterations) / (float64(m.WallNS) / 1e9))
	}
	m.OffCPUNS = m.WallNS - min(m.CPUTimeNS, m.WallNS)
	if m.CPUTimeNS > 0 {
		m.RatePerCPUS = Round3(float64(m.Iterations) / (float64(m.CPUTimeNS) / 1e9))
	}
	m.MigrationRatio = MigrationRatio(m.Migrations, m.Iterations)
	if at.RunDelay >= 0 && r.base.RunDelay >= 0 {
		m.RunDelayNS = uint64(max(at.RunDelay-r.base.RunDelay, 0))
		m.Timeslices = uint64(max(at.Timeslices-r.base.Timeslices, 0))
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
		m.WakeLatP50NS = uint64(Percentile(s, 50))
		m.WakeLatP99NS = uint64(Percentile(s, 99))
		m.WakeLatMaxNS = uint64(r.latMax)
		m.WakeLatCV = Round3(cvFromSums(float64(r.latN), r.latSum, r.latSumSq))
	}
	return m
}
