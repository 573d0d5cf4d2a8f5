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
	}
	for _, w := range works {
		cg := &rtCgroup{name: w.Type + w.Mode, work: w}
		r.cgs[cg.name] = cg
		r.order = append(r.order, cg.name)
		if w.Type == scenario.WorkPingPong {
			if err := r.spawnPair(cg, cg); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := r.spawnWorker(cg, WorkerSpec{Work: w}, nil, nil); err != nil {
			t.Fatal(err)
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
	time.Sleep(300 * time.Millisecond)
	reps := r.collect(30 * time.Second)
	for _, w := range r.all() {
		m := reps[w]
		if m == nil {
			t.Fatalf("no report from %s worker %d", w.work.Type, w.id)
		}
		if m.Iterations == 0 || len(m.CPUs) == 0 || m.WallNS == 0 || m.CPUTimeNS == 0 {
			t.Errorf("%s worker %d: empty record %+v", w.work.Type, w.id, *m)
		}
		wantWake := w.work.Type == scenario.WorkPingPong || w.work.Type == scenario.WorkBursty
		if wantWake != (m.WakeSamples > 0) {
			t.Errorf("%s worker %d: %d wake samples", w.work.Type, w.id, m.WakeSamples)
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
