package workload

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkTelemetry measures what the per-worker telemetry costs a work
// loop: the same spin unit with and without the progress mark (clock read,
// getcpu, gap and migration bookkeeping) and the check for a pending
// report request that every loop does after each unit. The two run in
// alternating blocks of 32 units inside one benchmark, so that both see
// the same machine (this project's hosts are shared and noisy), and the
// benchmark reports both rates and the overhead as a ratio of the two.
// The unit sizes are upstream ktstr's (1024 spins per mark) and ours
// (16384).
func BenchmarkTelemetry(b *testing.B) {
	const block = 32
	for _, unit := range []int{1024, spinUnit} {
		b.Run(fmt.Sprintf("unit=%d", unit), func(b *testing.B) {
			rec := NewRecorder(ReadStamp())
			var requested atomic.Uint64
			var served uint64
			l := &loop{rec: rec, env: &Env{Rec: rec, Serve: func() {
				if r := requested.Load(); r > served {
					served = r
				}
			}}}
			var bareNS, recNS int64
			for i := 0; i < b.N; i++ {
				t0 := nanotime()
				for j := 0; j < block; j++ {
					Spin(unit)
				}
				t1 := nanotime()
				for j := 0; j < block; j++ {
					Spin(unit)
					l.mark(1)
				}
				t2 := nanotime()
				bareNS += t1 - t0
				recNS += t2 - t1
			}
			units := float64(b.N * block)
			bare, recorded := units/(float64(bareNS)/1e9), units/(float64(recNS)/1e9)
			b.ReportMetric(bare, "bare-iter/s")
			b.ReportMetric(recorded, "recorded-iter/s")
			b.ReportMetric((bare/recorded-1)*100, "overhead-%")
		})
	}
}

// BenchmarkMark is the cost of the telemetry alone: one progress mark and
// the report-request check, per unit of work.
func BenchmarkMark(b *testing.B) {
	rec := NewRecorder(ReadStamp())
	var requested atomic.Uint64
	var served uint64
	l := &loop{rec: rec, env: &Env{Rec: rec, Serve: func() {
		if r := requested.Load(); r > served {
			served = r
		}
	}}}
	for i := 0; i < b.N; i++ {
		l.mark(1)
	}
}

// BenchmarkSpin is one work unit without telemetry, for scale.
func BenchmarkSpin(b *testing.B) {
	for _, unit := range []int{1024, spinUnit} {
		b.Run(fmt.Sprintf("unit=%d", unit), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Spin(unit)
			}
		})
	}
}
