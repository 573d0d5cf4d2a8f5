package decode

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// A scheduler's debug dump (and any multi-line output or log) is shown in
// text mode as its lines, each a record with the frame's prefix; JSON mode
// keeps one object per frame with the text as it was.
func TestTextMultiLine(t *testing.T) {
	dump := "DEBUG DUMP\n" +
		"================================================================================\n" +
		"\n" +
		"kworker/u8:1[63] triggered exit kind 1026:\n" +
		"  runnable task stall (kworker/1:2[87] failed to run for 5.2s)\n" +
		"\n" +
		"CPU 1   : nr_run=2 flags=0x1 cpu_rel=0 ops_qseq=11 pnt_seq=9\n" +
		"          curr=swapper/1[0] class=idle_sched_class\n" +
		"  R kworker/1:2[87] -5206ms\tscx_state/flags=3/0x1\n"
	var b bytes.Buffer
	e := wire.NewEncoder(&b, wire.WithClock(stepClock(1_000_000_000, 1_000_000)))
	for _, m := range []wire.Message{
		wire.Output{Stream: wire.StreamStdout, Program: wire.ProgramScheduler, Data: []byte(dump)},
		wire.Output{Stream: wire.StreamStderr, Program: wire.ProgramScheduler, Data: []byte("one line\n")},
		wire.Output{Stream: wire.StreamStdout, Program: wire.ProgramPayloadBase, Data: []byte("a\r\nb\x1b[0m\n\n")},
		wire.Log{Text: "first\nsecond"},
	} {
		if err := e.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := render(t, b.Bytes(), Options{Format: Text})
	if err != nil {
		t.Fatal(err)
	}
	p := "  +0.000000 G output         scheduler/stdout: "
	want := p + "DEBUG DUMP\n" +
		p + "================================================================================\n" +
		p + "\n" +
		p + "kworker/u8:1[63] triggered exit kind 1026:\n" +
		p + "  runnable task stall (kworker/1:2[87] failed to run for 5.2s)\n" +
		p + "\n" +
		p + "CPU 1   : nr_run=2 flags=0x1 cpu_rel=0 ops_qseq=11 pnt_seq=9\n" +
		p + "          curr=swapper/1[0] class=idle_sched_class\n" +
		p + "  R kworker/1:2[87] -5206ms\\tscx_state/flags=3/0x1\n" +
		"  +0.001000 G output         scheduler/stderr: one line\n" +
		"  +0.002000 G output         payload0/stdout: a\\r\n" +
		"  +0.002000 G output         payload0/stdout: b\\x1b[0m\n" +
		"  +0.002000 G output         payload0/stdout: \n" +
		"  +0.003000 G log            first\n" +
		"  +0.003000 G log            second\n"
	if got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
	js, _, err := render(t, b.Bytes(), Options{Format: JSON})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(js, "\n"); n != 4 {
		t.Errorf("JSON: %d lines for 4 frames:\n%s", n, js)
	}
	if !strings.Contains(js, `"text":"DEBUG DUMP\n====`) {
		t.Errorf("JSON text changed:\n%s", js)
	}
}
