package workload

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkTelemetry measures what the per-worker telemetry costs a work
// loop: the same spin unit with and without the progress mark (clock read,
// getcpu, gap and migration bookkeeping) and the check for a pending
// report request that every loop does after each unit. Compare the
// iter/s of "bare" and "recorded" at the same unit size; the unit sizes
// are upstream ktstr's (1024 spins per mark) and ours (16384).
func BenchmarkTelemetry(b *testing.B) {
	for _, unit := range []int{1024, spinUnit} {
		b.Run(fmt.Sprintf("unit=%d/bare", unit), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Spin(unit)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "iter/s")
		})
		b.Run(fmt.Sprintf("unit=%d/recorded", unit), func(b *testing.B) {
			rec := NewRecorder(ReadStamp())
			var requested atomic.Uint64
			var served uint64
			l := &loop{rec: rec, env: &Env{Rec: rec, Serve: func() {
				if r := requested.Load(); r > served {
					served = r
				}
			}}}
			for i := 0; i < b.N; i++ {
				Spin(unit)
				l.mark(1)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "iter/s")
		})
	}
}
