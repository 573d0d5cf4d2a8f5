package decode

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{DSQName(1<<63 | 1), "SCX_DSQ_GLOBAL"},
		{DSQName(1<<63 | 2), "SCX_DSQ_LOCAL"},
		{DSQName(1<<63 | 1<<62 | 3), "SCX_DSQ_LOCAL_ON|3"},
		{DSQName(1 << 63), "SCX_DSQ_INVALID"},
		{DSQName(1<<63 | 7), "SCX_DSQ_BUILTIN|0x7"},
		{DSQName(0), "0"},
		{DSQName(4096), "4096"},
		{EnqFlags(0), "0"},
		{EnqFlags(1 | 1<<10 | 1<<40), "WAKEUP|CPU_SELECTED|REENQ"},
		{EnqFlags(1<<56 | 1<<20), "CLEAR_OPSS|0x100000"},
		{DeqFlags(1 | 8), "SLEEP|NOCLOCK"},
		{MaskCPUs(0b1011), "0-1,3"},
		{MaskCPUs(0), "none"},
		{MaskCPUs(1 << 63), "63"},
		{ExitKindName(1026), "error_stall (1026)"},
		{ExitKindName(7), "7"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func timelineStream(t testing.TB) []byte {
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	ip := func(v int) *int { return &v }
	u := func(v uint64) *uint64 { return &v }
	kind, code := 1026, int64(0)
	msgs := []wire.Message{
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}},
			Failed: []wire.ProbeAttach{{Func: "gone_fn", Kind: "kprobe", Error: "not found"}}},
		// Out of order on purpose: the timeline sorts by time.
		wire.ProbeEvent{TimeNS: 3_000_000, CPU: 1, PID: 9, Comm: "w", Func: "dispatch_enqueue", TaskPID: ip(9), TaskComm: "w",
			DSQ: u(1<<63 | 1), EnqFlags: u(1), CPUMask: u(3)},
		wire.ProbeEvent{TimeNS: 1_000_000, CPU: 0, PID: 9, Comm: "w", Func: "select_task_rq_scx", TaskPID: ip(9), TaskComm: "w", LastSeen: true},
		wire.ProbeEvent{TimeNS: 5_000_000, CPU: 0, PID: 30, Comm: "kworker/0:1", Func: "scx_ops_exit_kind", Trigger: true,
			ExitKind: &kind, ExitCode: &code, Text: "%s[%d] failed to run", Stack: []string{"scx_ops_exit_kind+0x1", "scx_watchdog_workfn+0x10"}},
		wire.ProbeEvent{TimeNS: 6_000_000, CPU: 0, PID: 31, Comm: "k", Func: "scx_ops_disable_workfn", Args: []uint64{1, 2, 3, 4}},
		wire.SchedExit{Kind: 1026, KindName: "error_stall", Message: "w[9] failed to run for 5.0s, gone[77] too"},
		wire.ProbeMeta{Stage: wire.ProbeStageDone, Attached: []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}},
			Triggered: true, Events: 10, Sent: 4, Programs: []string{"qmap_enqueue"}},
	}
	for _, m := range msgs {
		enc.Encode(m)
	}
	return b.Bytes()
}

func TestTimeline(t *testing.T) {
	var out bytes.Buffer
	if err := Timeline(bytes.NewReader(timelineStream(t)), &out, TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"not attached: gone_fn: not found",
		"scheduler callbacks (struct_ops programs): qmap_enqueue",
		"events: 10 recorded, the last 4 kept",
		"trigger: scx_ops_exit_kind at 0.005000 s",
		"ls      -4.000   0 9/w ",
		"dsq=SCX_DSQ_GLOBAL enq_flags=WAKEUP cpus=0-1",
		">>       0.000   0 30/kworker/0:1",
		"EXIT kind=error_stall (1026) code=0",
		"stack: scx_ops_exit_kind+0x1 <- scx_watchdog_workfn+0x10",
		"args=0x1,0x2,0x3,0x4",
		"9/w (named by the scheduler's exit): select_task_rq@-4.000/cpu0(last seen) -> dispatch_enqueue@-2.000/cpu1[SCX_DSQ_GLOBAL]",
		"77 (named by the scheduler's exit): no event recorded",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("timeline lacks %q:\n%s", want, s)
		}
	}
	if strings.Index(s, "select_task_rq_scx") > strings.Index(s, "dispatch_enqueue ") {
		t.Errorf("events not in time order:\n%s", s)
	}
	// A window: one event before the trigger.
	out.Reset()
	Timeline(bytes.NewReader(timelineStream(t)), &out, TimelineOptions{Events: 1})
	if s := out.String(); strings.Contains(s, "select_task_rq_scx ") || !strings.Contains(s, "showing events 2..3 of 4") {
		t.Errorf("window of 1:\n%s", s)
	}
	// No probes: ErrNoProbes; garbage: no panic.
	err := Timeline(bytes.NewReader([]byte("not a stream")), &out, TimelineOptions{})
	if !errors.Is(err, ErrNoProbes) {
		t.Errorf("no probes: %v", err)
	}
}

func FuzzTimeline(f *testing.F) {
	f.Add(timelineStream(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		Timeline(bytes.NewReader(b), &bytes.Buffer{}, TimelineOptions{Events: 3})
	})
}

// TestReadTimeline: the view holds what Timeline prints, as data; its
// text is Timeline's output; guest strings in it are escaped.
func TestReadTimeline(t *testing.T) {
	v, err := ReadTimeline(bytes.NewReader(timelineStream(t)), TimelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Probes || v.Trigger != "scx_ops_exit_kind" || v.Total != 4 || v.First != 0 || len(v.Events) != 4 {
		t.Fatalf("view %+v", v)
	}
	trig := v.Events[2]
	if !trig.Trigger || trig.RelMS != "0.000" || trig.Running != "30/kworker/0:1" || len(trig.Stack) != 2 ||
		trig.Fields != `EXIT kind=error_stall (1026) code=0 text="%s[%d] failed to run"` {
		t.Errorf("trigger event %+v", trig)
	}
	if e := v.Events[0]; !e.LastSeen || e.RelMS != "-4.000" || e.Func != "select_task_rq_scx" || e.Fields != "task=9/w" {
		t.Errorf("first event %+v", e)
	}
	if len(v.Tasks) != 2 || v.Tasks[0].PID != 9 || !v.Tasks[0].Named || len(v.Tasks[0].Steps) != 2 ||
		v.Tasks[0].Steps[1] != (TimelineStep{Func: "dispatch_enqueue", RelMS: "-2.000", CPU: 1, DSQ: "SCX_DSQ_GLOBAL"}) ||
		v.Tasks[1].PID != 77 || len(v.Tasks[1].Steps) != 0 {
		t.Errorf("tasks %+v", v.Tasks)
	}
	var out bytes.Buffer
	Timeline(bytes.NewReader(timelineStream(t)), &out, TimelineOptions{})
	if got := string(v.AppendText(nil)); got != out.String() {
		t.Errorf("AppendText differs from Timeline:\n%s\n---\n%s", got, out.String())
	}
	// A window of one event before the trigger.
	v, _ = ReadTimeline(bytes.NewReader(timelineStream(t)), TimelineOptions{Events: 1})
	if v.First != 1 || len(v.Events) != 2 || v.Events[0].Func != "dispatch_enqueue" {
		t.Errorf("window: first %d, %d events", v.First, len(v.Events))
	}

	// Hostile guest strings: a terminal escape and a newline in comm,
	// func and stack; invalid UTF-8.
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	pid := 5
	enc.Encode(wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "f\x1b[2J", Kind: "kprobe"}}})
	enc.Encode(wire.ProbeEvent{TimeNS: 1, PID: 5, Comm: "evil\x1b]0;x\x07\nnext", Func: "fn\n", TaskPID: &pid, TaskComm: "t\x1b",
		Trigger: true, Stack: []string{"a\x1bb"}})
	enc.Encode(wire.SchedExit{Kind: 1024, KindName: "error", Message: "bad\xff\x1b[31m"})
	v, err = ReadTimeline(bytes.NewReader(b.Bytes()), TimelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := string(v.AppendText(nil))
	if strings.ContainsAny(text, "\x1b\x07") || strings.Contains(text, "\nnext") {
		t.Errorf("control characters reach the text:\n%q", text)
	}
	if v.Events[0].Running != `5/evil\x1b]0;x\x07\nnext` || v.Events[0].Func != `fn\n` || v.Events[0].Stack[0] != `a\x1bb` ||
		!strings.Contains(text, "bad\ufffd\\x1b[31m") {
		t.Errorf("escapes missing: %+v\n%s", v.Events[0], text)
	}
	// No probes: the view and ErrNoProbes; unreadable: a ReadError.
	v, err = ReadTimeline(bytes.NewReader(nil), TimelineOptions{})
	if !errors.Is(err, ErrNoProbes) || v == nil || v.Probes {
		t.Errorf("empty stream: %v %+v", err, v)
	}
}

// TestTimelineOps: the probes on the scheduler's callbacks (fentry,
// fexit) in the summary and the event lines, with the last probe_meta
// (sent after the callbacks were probed) deciding what attached.
func TestTimelineOps(t *testing.T) {
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	ip := func(v int) *int { return &v }
	u := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	kind, code := 1025, int64(0)
	kp := wire.ProbeAttach{Func: "scx_ops_exit_kind", Kind: "kprobe"}
	for _, m := range []wire.Message{
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{kp}},
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{kp, {Func: "ops:qmap_enqueue", Kind: "fentry"}},
			Failed: []wire.ProbeAttach{{Func: "ops:qmap_dump", Kind: "fentry", Error: "load fentry: permission denied"}}},
		wire.ProbeEvent{TimeNS: 500_000, CPU: 0, PID: 12, Comm: "init", Func: "ops:qmap_select_cpu", TaskPID: ip(12), TaskComm: "init",
			Ret: i64(1), Args: []uint64{0xffff888000001000, 0, 8, 0}},
		wire.ProbeEvent{TimeNS: 4_000_000, CPU: 0, PID: 12, Comm: "init", Func: "ops:qmap_enqueue", TaskPID: ip(12), TaskComm: "init",
			Args: []uint64{0xffff888000001000, 9, 0, 0}},
		wire.ProbeEvent{TimeNS: 4_500_000, CPU: 1, PID: 12, Comm: "init", Func: "ops:qmap_dequeue", TaskPID: ip(13), TaskComm: "x",
			EnqFlags: u(1), Args: []uint64{0xffff888000002000, 1, 0, 0}},
		wire.ProbeEvent{TimeNS: 5_000_000, CPU: 0, PID: 12, Comm: "init", Func: "scx_ops_exit_kind", Trigger: true, ExitKind: &kind, ExitCode: &code},
	} {
		enc.Encode(m)
	}
	var out bytes.Buffer
	if err := Timeline(bytes.NewReader(b.Bytes()), &out, TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"attached: 1 kprobes: scx_ops_exit_kind\n",
		"attached: 1 probes on the scheduler's callbacks (fentry; NAME(ret): fexit): ops:qmap_enqueue\n",
		"not attached: ops:qmap_dump: load fentry: permission denied",
		"ops:qmap_select_cpu       ret=1 task=12/init args=",
		"-1.000   0 12/init                ops:qmap_enqueue          task=12/init args=0xffff888000001000,0x9,0x0,0x0",
		"ops:qmap_dequeue          task=13/x deq_flags=SLEEP args=",
		"12/init: ops:qmap_select_cpu@-4.500/cpu0 -> ops:qmap_enqueue@-1.000/cpu0",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("timeline lacks %q:\n%s", want, s)
		}
	}
	// The done frame, when there is one, says it all (fexit included).
	enc.Encode(wire.ProbeMeta{Stage: wire.ProbeStageDone, Attached: []wire.ProbeAttach{kp, {Func: "ops:qmap_enqueue", Kind: "fentry"},
		{Func: "ops:qmap_select_cpu", Kind: "fexit"}}})
	out.Reset()
	Timeline(bytes.NewReader(b.Bytes()), &out, TimelineOptions{})
	if want := "attached: 2 probes on the scheduler's callbacks (fentry; NAME(ret): fexit): ops:qmap_enqueue ops:qmap_select_cpu(ret)\n"; !strings.Contains(out.String(), want) {
		t.Errorf("with the done frame, timeline lacks %q:\n%s", want, out.String())
	}
}
