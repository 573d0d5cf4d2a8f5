package pipeline

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func encodeStream(t *testing.T, msgs ...wire.Message) []byte {
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	for _, m := range msgs {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestRunAutoRepro runs the real process plumbing with fake tools: a
// scheduler failure boots a second time with ktstr.probe naming the
// functions of the exit dump's backtrace, saves FILE.repro.ktstr and
// prints ktstr-decode --timeline's output; any other result boots once.
func TestRunAutoRepro(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("SKIP: no sh")
	}
	tl := fakeTools(t)
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		tl[name] = p
	}
	// ktstr-boot: the first boot's stream, or with ktstr.probe the second's.
	write(Boot, `echo "$*" >>"$FAKE_DIR/boot.args"
case "$*" in *ktstr.probe*) cat "$FAKE_DIR/second";; *) cat "$FAKE_DIR/first";; esac
exit ${FAKE_BOOT:-0}
`)
	write(Decode, `case "$1" in --timeline) echo "TIMELINE $*"; exit 0;; esac
cat >/dev/null; echo "verdict: x"; exit ${FAKE_DEC:-0}
`)
	k := fixtureFile(t, "bzImage")
	dump := wire.Output{Stream: wire.StreamStderr, Program: wire.ProgramScheduler,
		Data: []byte("Backtrace:\n  scx_bpf_error_bstr+0x66/0x80\n  do_enqueue_task+0x11a/0x410\n\n")}
	schedErr := encodeStream(t, dump, wire.SchedExit{Kind: 1025, KindName: "error_bpf", Reason: "scx_bpf_error"})
	otherFail := encodeStream(t, wire.CheckResult{Name: "fairness"}, wire.SchedExit{Kind: 64, KindName: "unreg"})
	second := encodeStream(t, wire.ProbeMeta{Stage: wire.ProbeStageAttached})
	for _, c := range []struct {
		name    string
		first   []byte
		env     map[string]string
		want    int
		boots   int
		skipped string
	}{
		{"scheduler error", schedErr, map[string]string{"FAKE_BOOT": "4", "FAKE_DEC": "1"}, ExitFail, 2, ""},
		{"other failure", otherFail, map[string]string{"FAKE_BOOT": "1", "FAKE_DEC": "1"}, ExitFail, 1, "not the scheduler's"},
		{"pass", schedErr, nil, ExitPass, 1, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			fd := t.TempDir()
			t.Setenv("FAKE_DIR", fd)
			os.WriteFile(filepath.Join(fd, "first"), c.first, 0o644)
			os.WriteFile(filepath.Join(fd, "second"), second, 0o644)
			save := filepath.Join(t.TempDir(), "run.ktstr")
			s := Spec{Kernel: k, Save: save, Append: "loglevel=4"}
			topo, err := s.Check()
			if err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			res, rep, err := RunAutoRepro(context.Background(), &s, tl, Reservation{ReserveCPUs, len(topo.CPUs)}, &out, &errb, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Exit != c.want {
				t.Errorf("exit %d (%s), want %d; stderr %s", res.Exit, res.Why, c.want, errb.String())
			}
			args, _ := os.ReadFile(filepath.Join(fd, "boot.args"))
			boots := strings.Split(strings.TrimSpace(string(args)), "\n")
			if len(boots) != c.boots {
				t.Fatalf("%d boots, want %d: %q", len(boots), c.boots, boots)
			}
			if !strings.Contains(rep.Skipped, c.skipped) {
				t.Errorf("skipped %q, want %q", rep.Skipped, c.skipped)
			}
			if c.boots == 1 {
				if _, err := os.Stat(ReproPath(save)); err == nil {
					t.Error("a repro stream without a second boot")
				}
				return
			}
			if !strings.Contains(boots[1], "--append loglevel=4 ktstr.probe=do_enqueue_task") {
				t.Errorf("second boot %q lacks the probe key", boots[1])
			}
			if b, _ := os.ReadFile(ReproPath(save)); !bytes.Equal(b, second) {
				t.Errorf("%s holds %d bytes, not the second stream", ReproPath(save), len(b))
			}
			if b, _ := os.ReadFile(save); !bytes.Equal(b, c.first) {
				t.Errorf("the first stream was overwritten")
			}
			if !strings.Contains(out.String(), "TIMELINE --timeline --timeline-events 60 "+ReproPath(save)) {
				t.Errorf("stdout %q lacks the timeline", out.String())
			}
			if rep.Why == "" || rep.Result == nil || !strings.Contains(errb.String(), "auto-repro: second boot took") {
				t.Errorf("repro %+v; stderr %s", rep, errb.String())
			}
		})
	}
	if got := ReproPath("/x/run.ktstr"); got != "/x/run.repro.ktstr" {
		t.Errorf("ReproPath = %q", got)
	}
	if got := ReproPath("run"); got != "run.repro.ktstr" {
		t.Errorf("ReproPath = %q", got)
	}
}
