package streamgen

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var words = strings.Fields(`dispatch enqueue local global dsq cpu task runnable slice vtime weight
	kworker migrate idle select wakeup tick stall cgroup cpuset bpf map ringbuf`)

func line(r *rand.Rand, b *strings.Builder) {
	n := 6 + r.IntN(12)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(3) == 0 {
			fmt.Fprintf(b, "=%d", r.IntN(100000))
		}
	}
	b.WriteByte('\n')
}

// Write writes a mixed stream of at least size bytes (it stops after the
// frame that crosses size) to w, deterministically for a given seed, and
// returns the bytes written. One "tick" of a run is: a scheduler output
// chunk, a payload's output chunk of a few KiB, eight worker_metrics and
// two cgroup_metrics, and a host monitor_sample of eight CPUs; every
// 50th tick adds a phase, a log line and a check_result.
func Write(w io.Writer, size int64, seed uint64) (int64, error) {
	cw := &countingWriter{w: w}
	r := rand.New(rand.NewPCG(seed, 0x6b747374))
	var gt, ht uint64 = 1e9, 1e6
	guest := wire.NewEncoder(cw, wire.WithClock(func() uint64 { gt += uint64(r.IntN(2_000_000)); return gt }))
	host := wire.NewEncoder(cw, wire.WithFlags(wire.FlagHost), wire.WithClock(func() uint64 { ht += uint64(r.IntN(2_000_000)); return ht }))
	var sb strings.Builder
	for tick := 0; cw.n < size; tick++ {
		sb.Reset()
		line(r, &sb)
		if err := guest.Encode(wire.Output{Stream: wire.StreamStdout, Program: wire.ProgramScheduler, Data: []byte(sb.String())}); err != nil {
			return cw.n, err
		}
		sb.Reset()
		for n := 10 + r.IntN(40); n > 0; n-- {
			line(r, &sb)
		}
		if err := guest.Encode(wire.Output{Stream: uint8(1 + r.IntN(2)), Program: wire.ProgramPayloadBase + uint32(r.IntN(4)), Data: []byte(sb.String())}); err != nil {
			return cw.n, err
		}
		step := tick / 100
		for wk := 0; wk < 8; wk++ {
			m := wire.WorkerMetrics{Step: step, Cgroup: fmt.Sprintf("cg%d", wk/4), Worker: wk, PID: 200 + wk, Work: "spin",
				Iterations: r.Uint64N(1e6), CPUTimeNS: r.Uint64N(2e9), WallNS: 2e9, MaxGapNS: r.Uint64N(5e7), MaxGapCPU: r.IntN(8),
				CPUs: []int{wk % 8, (wk + 1) % 8}, Migrations: r.Uint64N(100), CPUShare: r.Float64()}
			if err := guest.Encode(m); err != nil {
				return cw.n, err
			}
		}
		for cg := 0; cg < 2; cg++ {
			m := wire.CgroupMetrics{Step: step, Cgroup: fmt.Sprintf("cg%d", cg), Workers: 4, Cpuset: []int{4 * cg, 4*cg + 1, 4*cg + 2, 4*cg + 3},
				Weight: 100, CPUsUsed: 4, Iterations: r.Uint64N(4e6), CPUTimeNS: r.Uint64N(8e9), SpreadPct: r.Float64() * 10,
				MaxGapNS: r.Uint64N(5e7), Migrations: r.Uint64N(400)}
			if err := guest.Encode(m); err != nil {
				return cw.n, err
			}
		}
		s := wire.MonitorSample{Seq: uint64(tick), ElapsedNS: ht, ScxState: "enabled", ScxOps: "simple", CPUs: make([]wire.CPUSample, 8)}
		for c := range s.CPUs {
			s.CPUs[c] = wire.CPUSample{CPU: c, NrRunning: uint32(r.IntN(4)), ClockNS: ht + r.Uint64N(1e6), CurrPID: int32(200 + r.IntN(8)),
				CurrComm: "ktstr-worker", LocalDSQ: uint32(r.IntN(3)), ScxNrRun: uint32(r.IntN(4))}
		}
		if err := host.Encode(s); err != nil {
			return cw.n, err
		}
		if tick%50 == 0 {
			for _, m := range []wire.Message{
				wire.Phase{Phase: wire.PhaseScenarioStart, Detail: fmt.Sprintf("scenario%d", tick/50)},
				wire.Log{Text: "step " + fmt.Sprint(step) + ": all workers running"},
				wire.CheckResult{Name: "starvation", Pass: true, Threshold: 2000, Observed: float64(r.IntN(2000)), Unit: "ms", Step: step},
			} {
				if err := guest.Encode(m); err != nil {
					return cw.n, err
				}
			}
		}
	}
	return cw.n, nil
}
