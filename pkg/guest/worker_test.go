package guest

import (
	"os"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/scenario"
)

// TestMain lets the test binary act as a worker process, as /init does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == WorkerArg {
		os.Exit(RunWorker(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestWorkersOnHost runs real worker processes of every built-in work type
// (without cgroups) through the runner's spawn, hello and report protocol.
func TestWorkersOnHost(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	r := &runner{e: &env{console: devnull}, self: os.Args[0], cgs: map[string]*rtCgroup{}, pending: map[string]bool{}}
	works := []scenario.Work{
		{Type: scenario.WorkSpin},
		{Type: scenario.WorkYield},
		{Type: scenario.WorkBursty, RunMS: 5, SleepMS: 5},
		{Type: scenario.WorkPingPong},
		{Type: scenario.WorkPingPong, Mode: "futex"},
		{Type: scenario.WorkCPUSpin},
		{Type: scenario.WorkYieldHeavy},
		{Type: scenario.WorkMixed},
		{Type: scenario.WorkIOSync},
		{Type: scenario.WorkPipeIO, BurstIters: 512},
		{Type: scenario.WorkFutexPingPong},
		{Type: scenario.WorkFutexFanOut, FanOut: 2},
		{Type: scenario.WorkCachePressure, SizeKB: 64, Stride: 128},
		{Type: scenario.WorkCacheYield},
		{Type: scenario.WorkCachePipe},
		{Type: scenario.WorkSequence, Phases: []scenario.Phase{{Phase: "spin", MS: 20}, {Phase: "sleep", MS: 10}, {Phase: "yield", MS: 10}, {Phase: "io", MS: 10}}},
		{Type: scenario.WorkForkExit},
		{Type: scenario.WorkNiceSweep},
		{Type: scenario.WorkAffinityChurn},
		{Type: scenario.WorkPolicyChurn},
		{Type: scenario.WorkFanOutCompute, FanOut: 2, FootprintKB: 64, Operations: 1},
		{Type: scenario.WorkPageFaultChurn, RegionKB: 256, Touches: 16},
		{Type: scenario.WorkMutexContention, Contenders: 3, HoldIters: 64, WorkIters: 64},
		{Type: scenario.WorkCustom, Argv: []string{"/bin/true"}},
	}
	for _, w := range works {
		if w.Type == scenario.WorkCustom {
			if _, err := os.Stat(w.Argv[0]); err != nil {
				t.Logf("no %s: custom work not run", w.Argv[0])
				continue
			}
		}
		cg := &rtCgroup{name: w.Type + w.Mode, work: w}
		r.cgs[cg.name] = cg
		r.order = append(r.order, cg.name)
		switch g := w.GroupSize(); {
		case w.Paired():
			if err := r.spawnPair(cg, cg); err != nil {
				t.Fatal(err)
			}
		case g > 1:
			if err := r.spawnGroup(cg, g); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := r.spawnWorker(cg, WorkerSpec{Work: w}, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer r.teardown()
	r.awaitHello(30 * time.Second)
	for _, w := range r.all() {
		if !w.hello {
			t.Fatalf("worker %d (%s) never said hello", w.id, w.work.Type)
		}
	}
	r.collect(10 * time.Second) // opens the measurement window
	// 35 workers share the host's CPUs: a window of 1.5 s gives the slowest
	// (nice_sweep at nice 19, fan-out receivers) time for a few units.
	time.Sleep(1500 * time.Millisecond)
	reps := r.collect(30 * time.Second)
	for _, w := range r.all() {
		m := reps[w]
		if m == nil {
			t.Fatalf("no report from %s worker %d", w.work.Type, w.id)
		}
		if m.Iterations == 0 || len(m.CPUs) == 0 || m.WallNS == 0 || m.CPUTimeNS == 0 || m.Unit == "" || m.RatePerS <= 0 || m.RatePerCPUS <= 0 {
			t.Errorf("%s worker %d: empty record %+v", w.work.Type, w.id, *m)
		}
		if m.OffCPUNS != m.WallNS-min(m.WallNS, m.CPUTimeNS) {
			t.Errorf("%s worker %d: off-CPU %d, wall %d, CPU %d", w.work.Type, w.id, m.OffCPUNS, m.WallNS, m.CPUTimeNS)
		}
		if m.WakeSamples > 0 && (m.WakeLatP99NS < m.WakeLatP50NS || m.WakeLatMaxNS < m.WakeLatP99NS) {
			t.Errorf("%s worker %d: wake latencies p50 %d p99 %d max %d", w.work.Type, w.id, m.WakeLatP50NS, m.WakeLatP99NS, m.WakeLatMaxNS)
		}
		t.Logf("%-18s %d: %d %s, %.0f/s, %.0f/cpu-s, share %.2f, delay %d ms, mig %d, wake p50/p99/max %d/%d/%d us (%d)", w.work.Type+w.work.Mode, w.id, m.Iterations, m.Unit, m.RatePerS, m.RatePerCPUS, m.CPUShare, m.RunDelayNS/1e6, m.Migrations, m.WakeLatP50NS/1e3, m.WakeLatP99NS/1e3, m.WakeLatMaxNS/1e3, m.WakeSamples)
		info, _ := scenario.LookupWork(w.work.Type)
		// Every type that says it reports wake latencies does, except the
		// fan-out messengers (index 0), which only wake others, and a
		// mutex contender that never had to sleep for the lock.
		wantWake := info.Wakes && !(m.Unit == "wakes sent") && w.work.Type != scenario.WorkMutexContention
		if wantWake && m.WakeSamples == 0 {
			t.Errorf("%s worker %d (%s): no wake samples", w.work.Type, w.id, m.Unit)
		}
		if !info.Wakes && m.WakeSamples > 0 {
			t.Errorf("%s worker %d: %d wake samples from a type without wake-ups", w.work.Type, w.id, m.WakeSamples)
		}
	}
	// A worker whose control pipe closes exits by itself.
	w := r.all()[0]
	w.ctl.Close()
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not exit when its control pipe closed")
	}
	w.ctl = nil
}
