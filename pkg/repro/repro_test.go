package repro

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/probe"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

func stream(t testing.TB, msgs ...wire.Message) []byte {
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	for _, m := range msgs {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestInspect(t *testing.T) {
	dump := "DEBUG DUMP\nBacktrace:\n  scx_bpf_error_bstr+0x66/0x80\n  do_enqueue_task+0x11a/0x410\n\n"
	for _, c := range []struct {
		name string
		msgs []wire.Message
		why  string // substring; "" for no auto-repro
	}{
		{"error exit", []wire.Message{wire.SchedExit{Kind: 1025, KindName: "error_bpf", Reason: "scx_bpf_error"}}, "error_bpf (1025): scx_bpf_error"},
		{"stall", []wire.Message{wire.SchedExit{Kind: 1026, KindName: "error_stall", Reason: "runnable task stall"}}, "error_stall"},
		{"scheduler died", []wire.Message{wire.CheckResult{Name: "scheduler_died", Detail: "SIGSEGV"}}, "check scheduler_died failed: SIGSEGV"},
		{"task stall", []wire.Message{wire.CheckResult{Name: "task_stall", Detail: "kworker"}}, "task_stall"},
		{"normal exit, other check failed", []wire.Message{wire.SchedExit{Kind: 64, KindName: "unreg"},
			wire.CheckResult{Name: "fairness"}, wire.CheckResult{Name: "scheduler_died", Pass: true}}, ""},
		{"host frames only", []wire.Message{wire.VMExit{Reason: "timeout"}}, ""},
	} {
		msgs := append([]wire.Message{wire.Output{Stream: wire.StreamStderr, Program: wire.ProgramScheduler, Data: []byte(dump)},
			wire.Output{Stream: wire.StreamStdout, Program: wire.ProgramInit, Data: []byte("Backtrace:\n  not_this+0x1/0x2\n")}}, c.msgs...)
		b := stream(t, msgs...)
		// Garbage in front and a cut frame at the end change nothing.
		b = append([]byte("junk"), b...)
		b = append(b, stream(t, wire.Log{Text: "cut"})[:10]...)
		f, err := Inspect(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.why == "" && f.Why != "" || c.why != "" && !strings.Contains(f.Why, c.why) {
			t.Errorf("%s: why %q, want %q", c.name, f.Why, c.why)
		}
		if got := Funcs(f.Text); !reflect.DeepEqual(got, []string{"do_enqueue_task"}) {
			t.Errorf("%s: funcs %q", c.name, got)
		}
	}
}

func TestFuncs(t *testing.T) {
	console := `[    4.1] ktstr-init: phase scenario_start
[    5.2] Call Trace:
[    5.2]  <TASK>
[    5.2]  ? show_regs+0x60/0x70
[    5.2]  [<ffffffff8119e123>] balance_one+0x1a/0x2c0
[    5.2]  pick_next_task_scx.isra.0+0x10/0x20
[    5.2]  __schedule+0x84b/0x9b0
[    5.2]  </TASK>
[    5.3] unrelated_fn+0x1/0x2 outside a trace
Backtrace:
  scx_bpf_error_bstr+0x66/0x80
  bpf_prog_4467c37c419efaed_qmap_enqueue+0xd7/0x321
  bpf__sched_ext_ops_enqueue+0x4b/0xa7
  balance_one+0x1a/0x2c0
  do_enqueue_task+0x11a/0x410
  ret_from_fork_asm+0x1a/0x30

  after_blank+0x1/0x2
`
	want := []string{"show_regs", "balance_one", "pick_next_task_scx", "do_enqueue_task"}
	if got := Funcs([]byte(console)); !reflect.DeepEqual(got, want) {
		t.Errorf("Funcs = %q, want %q", got, want)
	}
	var many strings.Builder
	many.WriteString("Call Trace:\n")
	for i := range 100 {
		many.WriteString(" fn" + strings.Repeat("x", i) + "+0x1/0x2\n")
	}
	if got := Funcs([]byte(many.String())); len(got) != probe.MaxExtra {
		t.Errorf("%d funcs, want the cap %d", len(got), probe.MaxExtra)
	}
}

// FuzzFuncs: any text gives valid, distinct function names, at most
// probe.MaxExtra, that ktstr.probe accepts.
func FuzzFuncs(f *testing.F) {
	f.Add([]byte("Backtrace:\n  a+0x1/0x2\n  b.cold+0x1/0x2\n"))
	f.Add([]byte("Call Trace:\n <TASK>\n ? x+0x0/0x0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Funcs(b)
		if len(got) > probe.MaxExtra {
			t.Fatalf("%d funcs", len(got))
		}
		if _, err := probe.ParseList(strings.TrimPrefix(probe.FormatList(got), probe.CmdlineKey+"=")); err != nil {
			t.Fatalf("%q: %v", got, err)
		}
	})
}

// FuzzInspect: any bytes are read without a panic.
func FuzzInspect(f *testing.F) {
	f.Add(stream(f, wire.SchedExit{Kind: 1026, KindName: "error_stall", Message: "Backtrace:\n a+0x1/0x2\n"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		Inspect(bytes.NewReader(b))
	})
}
