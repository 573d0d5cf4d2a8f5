package monitor

import (
	"testing"

	"golang.org/x/sys/unix"
)

func cpuTimeNS() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSample measures one sample of an 8-vCPU guest (one CPU's
// per-CPU area behind the page-table walk, the others in the direct map)
// in process CPU time, and reports it as a share of one host CPU at the
// default 10 Hz. The budget is 2 %. The baseline sub-benchmark copies the
// same runqueue bytes straight out of the mapping, with no translation,
// task reads or sched_ext globals: the floor any sampler pays.
func BenchmarkSample(b *testing.B) {
	s := newSynthetic(b, 5)
	s.put32(s.pa(synNrCPU), 8)
	for cpu := 2; cpu < 8; cpu++ {
		s.put64(s.pa(synPCPU)+uint64(cpu)*8, s.pageOffset+0x100000+uint64(cpu)*0x40000)
	}
	s.setTask(0x400000, 1234, "spin")
	s.setRq(0, 3, 5e9, s.pageOffset+0x400000, 2, 1)
	s.put32(s.pa(synState), 1)
	g, err := Locate(s.memory(), s.k)
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, t0 int64) {
		per := float64(cpuTimeNS()-t0) / float64(b.N)
		b.ReportMetric(per, "cpu-ns/sample")
		b.ReportMetric(per*10/1e9*100, "%cpu@10Hz")
	}
	b.Run("baseline_copy", func(b *testing.B) {
		mem := s.memory()
		buf := make([]byte, synLayout.RqSize)
		t0 := cpuTimeNS()
		for b.Loop() {
			for cpu := range 8 {
				mem.Read(0x100000+uint64(cpu)*0x40000+synRunq, buf)
			}
		}
		report(b, t0)
	})
	b.Run("sampler_8cpu", func(b *testing.B) {
		sm := NewSampler(g, 0)
		t0 := cpuTimeNS()
		for b.Loop() {
			ms, err := sm.Sample(1)
			if err != nil || len(ms.CPUs) != 8 {
				b.Fatal(err)
			}
		}
		report(b, t0)
	})
	b.Run("sampler_8cpu_eval", func(b *testing.B) {
		sm := NewSampler(g, 0)
		ev := NewEvaluator(DefaultThresholds)
		t0 := cpuTimeNS()
		for b.Loop() {
			ms, _ := sm.Sample(1)
			ev.Sample(ms)
		}
		report(b, t0)
	})
}
