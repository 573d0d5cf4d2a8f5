package workload

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func st(monoMS, cpuMS int64) Stamp {
	ms := int64(time.Millisecond)
	return Stamp{Mono: monoMS * ms, CPU: cpuMS * ms, RunDelay: -1}
}

func TestRecorder(t *testing.T) {
	ms := int64(time.Millisecond)
	r := NewRecorder(st(1000, 50))
	r.SetUnit("spin bursts")
	r.Mark(1010*ms, 0)
	r.Mark(1020*ms, 0)
	r.Mark(1500*ms, 1) // 480 ms gap, migration
	r.Mark(1510*ms, 0) // migration
	r.Skip(1600 * ms)  // intended sleep until 1600
	r.Mark(1605*ms, 0)
	for _, l := range []int64{10, 20, 30, 40, 1000} {
		r.Wake(l)
	}
	m := r.Snapshot(st(1700, 250)) // trailing 95 ms: smaller than 480
	if m.Iterations != 5 || m.MaxGapNS != uint64(480*ms) || m.MaxGapCPU != 1 || m.Migrations != 2 || m.Unit != "spin bursts" {
		t.Errorf("got %+v", m)
	}
	if !reflect.DeepEqual(m.CPUs, []int{0, 1}) || m.WallNS != uint64(700*ms) || m.CPUTimeNS != uint64(200*ms) {
		t.Errorf("cpus/wall/cpu: %+v", m)
	}
	if m.OffCPUNS != uint64(500*ms) || m.MigrationRatio != 0.4 || m.RatePerS != 7.143 || m.RatePerCPUS != 25 {
		t.Errorf("off-cpu/ratio/rates: %+v", m)
	}
	if m.RunDelayNS != 0 || m.Timeslices != 0 {
		t.Errorf("no schedstat, but run delay %d, slices %d", m.RunDelayNS, m.Timeslices)
	}
	if m.WakeSamples != 5 || m.WakeLatP50NS != 30 || m.WakeLatP99NS != 1000 || m.WakeLatMaxNS != 1000 {
		t.Errorf("wake: %+v", m)
	}
	// population CV of {10,20,30,40,1000}: mean 220, sd 390.13
	if math.Abs(m.WakeLatCV-1.773) > 0.001 {
		t.Errorf("wake CV %v", m.WakeLatCV)
	}
	// After a reset the trailing gap of a worker that stopped running shows.
	r.Reset(Stamp{Mono: 2000 * ms, CPU: 300 * ms, RunDelay: 7 * ms, Timeslices: 10})
	m = r.Snapshot(Stamp{Mono: 4500 * ms, CPU: 300 * ms, RunDelay: 900 * ms, Timeslices: 14})
	if m.Iterations != 0 || m.MaxGapNS != uint64(2500*ms) || len(m.CPUs) != 0 || m.WakeSamples != 0 || m.MigrationRatio != 0 || m.RatePerCPUS != 0 {
		t.Errorf("after reset: %+v", m)
	}
	if m.RunDelayNS != uint64(893*ms) || m.Timeslices != 4 || m.OffCPUNS != uint64(2500*ms) {
		t.Errorf("schedstat deltas: %+v", m)
	}
	// A migration across the reset still counts (last CPU was 0).
	r.Mark(4600*ms, 3)
	if m = r.Snapshot(st(4600, 300)); m.Migrations != 1 {
		t.Errorf("migration across reset: %+v", m)
	}
	// MarkN counts several units at once; CPU time of child programs adds.
	r.Reset(st(5000, 400))
	r.MarkN(5100*ms, 3, 16)
	r.AddCPU(50 * ms)
	if m = r.Snapshot(st(6000, 450)); m.Iterations != 16 || m.CPUTimeNS != uint64(100*ms) || m.RatePerCPUS != 160 {
		t.Errorf("MarkN/AddCPU: %+v", m)
	}
	// The reservoir stays bounded.
	for i := 0; i < maxLatSamples+500; i++ {
		r.Wake(int64(i))
	}
	if len(r.lat) != maxLatSamples || r.latN != maxLatSamples+500 {
		t.Errorf("reservoir %d of %d", len(r.lat), r.latN)
	}
	if m = r.Snapshot(st(7000, 450)); m.WakeLatP99NS < m.WakeLatP50NS || m.WakeLatMaxNS != maxLatSamples+499 {
		t.Errorf("reservoir percentiles: %+v", m)
	}
}

func TestPercentile(t *testing.T) {
	cases := []struct {
		in   []int64
		p    int
		want int64
	}{
		{nil, 50, 0},
		{[]int64{7}, 1, 7},
		{[]int64{7}, 99, 7},
		{[]int64{1, 2}, 50, 1},
		{[]int64{1, 2}, 51, 2},
		{[]int64{1, 2, 3, 4}, 50, 2},
		{[]int64{1, 2, 3, 4}, 75, 3},
		{[]int64{1, 2, 3, 4}, 100, 4},
		{[]int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 99, 100},
		{[]int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 90, 90},
	}
	for _, c := range cases {
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("Percentile(%v, %d) = %d, want %d", c.in, c.p, got, c.want)
		}
	}
	// p99 >= p50 on any sorted input.
	s := make([]int64, 1000)
	for i := range s {
		s[i] = int64(i * i)
	}
	if Percentile(s, 99) < Percentile(s, 50) {
		t.Error("p99 < p50")
	}
}

func TestCV(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 0},
		{[]float64{0, 0}, 0},
		{[]float64{3, 3, 3}, 0},
		{[]float64{1, 3}, 0.5},                   // mean 2, sd 1
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 0.4}, // mean 5, sd 2
		{[]float64{100, 0}, 1},
	}
	for _, c := range cases {
		if got := CV(c.in); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("CV(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestMigrationRatioAndMedian(t *testing.T) {
	ratios := []struct {
		mig, it uint64
		want    float64
	}{
		{0, 0, 0}, {5, 0, 0}, {0, 10, 0}, {1, 3, 0.333}, {10, 10, 1}, {30, 10, 3},
	}
	for _, c := range ratios {
		if got := MigrationRatio(c.mig, c.it); got != c.want {
			t.Errorf("MigrationRatio(%d, %d) = %v, want %v", c.mig, c.it, got, c.want)
		}
	}
	meds := []struct {
		in   []uint64
		want uint64
	}{
		{nil, 0}, {[]uint64{4}, 4}, {[]uint64{9, 1}, 1}, {[]uint64{5, 1, 9}, 5}, {[]uint64{8, 2, 6, 4}, 4},
	}
	for _, c := range meds {
		in := append([]uint64(nil), c.in...)
		if got := Median(c.in); got != c.want || !reflect.DeepEqual(in, c.in) {
			t.Errorf("Median(%v) = %d, want %d (input kept: %v)", in, got, c.want, c.in)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	cases := []struct {
		in       string
		delay, n int64
		ok       bool
	}{
		{"2920193 0 1\n", 0, 1, true},
		{"123 456 789", 456, 789, true},
		{"1 2", 0, 0, false},
		{"1 2 3 4", 0, 0, false},
		{"a 2 3", 0, 0, false},
		{"1 -2 3", 0, 0, false},
		{"1 99999999999999999999 3", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, c := range cases {
		d, n, ok := parseSchedstat([]byte(c.in))
		if d != c.delay || n != c.n || ok != c.ok {
			t.Errorf("parseSchedstat(%q) = %d, %d, %v; want %d, %d, %v", c.in, d, n, ok, c.delay, c.n, c.ok)
		}
	}
	// The real file of this thread parses.
	if st := ReadStamp(); st.Mono == 0 || st.CPU == 0 {
		t.Errorf("ReadStamp: %+v", st)
	}
}

func FuzzParseSchedstat(f *testing.F) {
	for _, s := range []string{"1 2 3\n", "2920193 0 1", "", "x y z", "1 2 18446744073709551615"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, n, ok := parseSchedstat(b)
		if !ok && (d != 0 || n != 0) {
			t.Fatalf("failed parse returned %d %d", d, n)
		}
		if ok && (d < 0 || n < 0) {
			t.Fatalf("negative values %d %d", d, n)
		}
	})
}

func TestTouchRunAndMatrices(t *testing.T) {
	buf := make([]byte, 256)
	off := touchRun(buf, 0, 64, 5) // 0, 64, 128, 192, 0
	if off != 64 || buf[0] != 2 || buf[64] != 1 || buf[192] != 1 || buf[1] != 0 {
		t.Errorf("touchRun: off %d buf %v", off, buf[:8])
	}
	m := newMatrices(256)
	if m.n != 104 || len(m.a) != 104*104 {
		t.Errorf("256 KiB footprint: n %d", m.n)
	}
	small := &matrices{n: 2, a: []uint64{1, 2, 3, 4}, b: []uint64{5, 6, 7, 8}, c: make([]uint64, 4)}
	small.multiply()
	if !reflect.DeepEqual(small.c, []uint64{19, 22, 43, 50}) {
		t.Errorf("multiply: %v", small.c)
	}
}

func TestGetcpu(t *testing.T) {
	// Whatever the method, getcpu agrees with the system call (retrying
	// across a migration).
	for i := 0; i < 100; i++ {
		a, b, c := sysGetcpu(), getcpu(), sysGetcpu()
		if a == c && a != b {
			t.Fatalf("getcpu %d, getcpu(2) %d (fast path %v)", b, a, useFastCPU)
		}
	}
	t.Logf("fast path (RDTSCP/TSC_AUX): %v", useFastCPU)
}
