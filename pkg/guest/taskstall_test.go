package guest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func TestParseTaskStat(t *testing.T) {
	fields := func(state string, cpu int) string {
		// Fields 4..38 (35 of them), then 39 (processor), then more.
		var b strings.Builder
		b.WriteString(state)
		for i := 4; i <= 38; i++ {
			fmt.Fprintf(&b, " %d", i)
		}
		fmt.Fprintf(&b, " %d 0 0 0", cpu)
		return b.String()
	}
	cases := []struct {
		in    string
		comm  string
		state byte
		cpu   int
		ok    bool
	}{
		{"12 (kworker/1:2) " + fields("R", 1), "kworker/1:2", 'R', 1, true},
		{"40 (a) b (c)) " + fields("S", 3), "a) b (c)", 'S', 3, true}, // comm with parens and spaces
		{"7 (x) R 1 2", "", 0, 0, false},                              // too short
		{"7 x) " + fields("R", 0), "", 0, 0, false},                   // no '('
		{"7 (x) " + fields("RR", 0), "", 0, 0, false},                 // state not one letter
		{"", "", 0, 0, false},
	}
	for _, c := range cases {
		comm, state, cpu, ok := parseTaskStat([]byte(c.in))
		if ok != c.ok || comm != c.comm || state != c.state || cpu != c.cpu {
			t.Errorf("parseTaskStat(%q) = %q %q %d %v; want %q %q %d %v", c.in, comm, state, cpu, ok, c.comm, c.state, c.cpu, c.ok)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	if v, ok := parseSchedstat([]byte("123456 789 10\n")); !ok || v != 123456 {
		t.Fatalf("parseSchedstat = %d %v", v, ok)
	}
	if _, ok := parseSchedstat([]byte("x")); ok {
		t.Fatal("parseSchedstat accepted garbage")
	}
}

// TestStallTracker drives the tracker through scans 250 ms apart.
func TestStallTracker(t *testing.T) {
	const iv = 250 * time.Millisecond
	t.Run("runnable task that never runs is a stall after the threshold", func(t *testing.T) {
		tr := newStallTracker(2 * time.Second)
		var found []stall
		var at time.Duration
		for i := 0; i < 20 && found == nil; i++ {
			at = time.Duration(i) * iv
			found = tr.scan(at, []taskSample{
				{tid: 12, pid: 12, comm: "kworker/1:2", state: 'R', cpu: 1, runtime: 500},
				{tid: 30, pid: 30, comm: "spin", state: 'R', cpu: 0, runtime: uint64(i) * 1e6},
			})
		}
		if len(found) != 1 || found[0].task.tid != 12 || found[0].waiting <= 2*time.Second {
			t.Fatalf("found %+v", found)
		}
		if at > 2500*time.Millisecond {
			t.Fatalf("found only at %s", at)
		}
		if got := taskName(found[0].task); got != "kworker/1:2[12]" {
			t.Errorf("name %q", got)
		}
		// Reported once.
		if again := tr.scan(at+iv, []taskSample{{tid: 12, pid: 12, state: 'R', cpu: 1, runtime: 500}}); len(again) != 0 {
			t.Fatalf("reported again: %+v", again)
		}
	})
	t.Run("a task that runs now and then is not a stall", func(t *testing.T) {
		tr := newStallTracker(2 * time.Second)
		for i := 0; i < 40; i++ {
			rt := uint64(i / 4) // runs once a second
			if f := tr.scan(time.Duration(i)*iv, []taskSample{{tid: 5, pid: 5, state: 'R', cpu: 0, runtime: rt}}); len(f) != 0 {
				t.Fatalf("scan %d: %+v", i, f)
			}
		}
		if tr.maxWait < 500*time.Millisecond || tr.maxWait > time.Second {
			t.Fatalf("max wait %s", tr.maxWait)
		}
	})
	t.Run("a sleeping task is not a stall", func(t *testing.T) {
		tr := newStallTracker(time.Second)
		for i := 0; i < 40; i++ {
			if f := tr.scan(time.Duration(i)*iv, []taskSample{{tid: 5, pid: 5, state: 'S', cpu: 0}}); len(f) != 0 {
				t.Fatalf("scan %d: %+v", i, f)
			}
		}
	})
	t.Run("a late scan (the guest was not running) charges at most two intervals", func(t *testing.T) {
		tr := newStallTracker(2 * time.Second)
		task := []taskSample{{tid: 9, pid: 9, comm: "x", state: 'R', cpu: 1, runtime: 7}}
		tr.scan(0, task)
		// The VM was paused for 10 s: one scan, 10 s late.
		if f := tr.scan(10*time.Second, task); len(f) != 0 || tr.tasks[9].waiting != 2*iv {
			t.Fatalf("found %+v, waiting %s", f, tr.tasks[9].waiting)
		}
		// Then on time: the threshold is crossed after 2 s more of waiting.
		n := 0
		var found []stall
		for i := 1; found == nil && i < 40; i++ {
			found = tr.scan(10*time.Second+time.Duration(i)*iv, task)
			n = i
		}
		if found == nil || n != 7 {
			t.Fatalf("found %+v after %d scans, want after 7", found, n)
		}
	})
	t.Run("tasks that go away are forgotten", func(t *testing.T) {
		tr := newStallTracker(time.Second)
		tr.scan(0, []taskSample{{tid: 1, state: 'R'}, {tid: 2, state: 'R'}})
		tr.scan(iv, []taskSample{{tid: 2, state: 'R'}})
		if len(tr.tasks) != 1 || tr.tasks[2] == nil {
			t.Fatalf("tasks %v", tr.tasks)
		}
	})
}

// TestReadTasksOnThisHost reads the real /proc: the scan must see this
// test's own threads with sensible fields.
func TestReadTasksOnThisHost(t *testing.T) {
	tasks := readTasks("/proc", make([]byte, 4096))
	self := os.Getpid()
	n := 0
	for _, tk := range tasks {
		if tk.pid == self {
			n++
			if tk.comm == "" || tk.cpu < 0 || !strings.ContainsRune("RSDTtIXZPW", rune(tk.state)) {
				t.Fatalf("bad sample of this process: %+v", tk)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no task of pid %d among %d", self, len(tasks))
	}
}

// TestStallScanRuns runs the scan loop on this host's /proc: it scans
// every interval until stopped and returns a result.
func TestStallScanRuns(t *testing.T) {
	th := 3 * time.Second
	w := &stallScan{tr: newStallTracker(th), procDir: "/proc",
		report: func(c wire.CheckResult) { t.Logf("this host: %s", c.Detail) }}
	stop := make(chan struct{})
	time.AfterFunc(700*time.Millisecond, func() { close(stop) })
	t0 := time.Now()
	c, stalled := w.run(stop)
	if w.scans < 3 || c.Name != CheckTaskStall || c.Pass == stalled {
		t.Fatalf("%d scans, result %+v, stalled %v", w.scans, c, stalled)
	}
	if d := time.Since(t0); d > 700*time.Millisecond+th+time.Second {
		t.Fatalf("took %s", d)
	}
}
