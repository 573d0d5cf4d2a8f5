package gauntlet

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// probeStream is a second boot's stream: probe_meta, two probe events
// (the trigger among them) and the scheduler's exit.
func probeStream(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	pid, kind := 9, 1025
	for _, m := range []wire.Message{
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}}},
		wire.ProbeEvent{TimeNS: 1_000_000, CPU: 1, PID: 9, Comm: "w", Func: "enqueue_task_scx", TaskPID: &pid, TaskComm: "w"},
		wire.ProbeEvent{TimeNS: 2_000_000, CPU: 0, PID: 9, Comm: "w", Func: "scx_ops_exit_kind", Trigger: true, ExitKind: &kind},
		wire.SchedExit{Kind: 1025, KindName: "error_bpf", Message: "qmap: injected error"},
	} {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestAutoReproSuite: auto-repro is on unless the suite's auto_repro is
// false; the variant's ktstr-run gets --auto-repro exactly then.
func TestAutoReproSuite(t *testing.T) {
	for _, c := range []struct {
		field string
		want  bool
	}{{"", true}, {`,"auto_repro":true`, true}, {`,"auto_repro":false`, false}} {
		l, err := LoadSuite(fixture(t, base+c.field+`}`), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range l.Expand() {
			args := ktstrRunArgs(&v, "/s")
			if v.AutoRepro != c.want || slices.Contains(args, "--auto-repro") != c.want {
				t.Errorf("%s: %s: auto_repro %v, args %q", c.field, v.Name, v.AutoRepro, args)
			}
			if i := slices.Index(args, "--auto-repro"); i >= 0 && slices.Contains(args, "--") && i > slices.Index(args, "--") {
				t.Errorf("--auto-repro after --: %q", args)
			}
		}
	}
	if _, err := LoadSuite(fixture(t, base+`,"auto_repro":"yes"}`), ""); err == nil || !strings.Contains(err.Error(), "auto_repro") {
		t.Errorf("auto_repro \"yes\": %v", err)
	}
}

// TestRunVariantAutoRepro: a variant whose ktstr-run saved a second
// stream records it as repro.ktstr with its timeline, both renamed into
// place; a variant without --auto-repro records neither, and a rerun
// after removing meta.json leaves no stale repro file.
func TestRunVariantAutoRepro(t *testing.T) {
	dir := t.TempDir()
	fix := filepath.Join(dir, "probe.ktstr")
	second := probeStream(t)
	os.WriteFile(fix, second, 0o644)
	krun := filepath.Join(dir, "ktstr-run")
	// Like ktstr-run: with --auto-repro and a failure, the second stream
	// goes beside --save's file.
	os.WriteFile(krun, []byte(`#!/bin/sh
save= repro=
while [ $# -gt 0 ]; do
  case $1 in
    --save) save=$2; shift ;;
    --auto-repro) repro=1 ;;
  esac
  shift
done
printf S >"$save"
echo "args: $repro" >&2
if [ -n "$repro" ]; then cp "$(dirname "$0")/probe.ktstr" "${save%.ktstr}.repro.ktstr"; fi
echo '{"verdict":{"result":"fail","reason":"scheduler error"}}'
exit 1
`), 0o755)
	rundir := filepath.Join(dir, "run")
	os.Mkdir(rundir, 0o755)
	l, err := LoadSuite(fixture(t, base+`}`), "")
	if err != nil {
		t.Fatal(err)
	}
	vs := l.Expand()
	vs[0].AutoRepro = false
	if err := writePlan(rundir, &Plan{Gauntlet: "/bin/false", KtstrRun: krun, Variants: vs}, SlurmOptions{}); err != nil {
		t.Fatal(err)
	}
	o := VariantOptions{Version: "v", Stderr: &strings.Builder{}}
	m, err := RunVariant(t.Context(), rundir, vs[1].Name, o)
	if err != nil || m.Verdict != runrecord.Fail {
		t.Fatalf("%v %+v", err, m)
	}
	vdir := runrecord.VariantDir(rundir, vs[1].Name)
	if b, _ := os.ReadFile(filepath.Join(vdir, runrecord.ReproStreamFile)); !bytes.Equal(b, second) {
		t.Errorf("repro.ktstr: %d bytes, not the second stream", len(b))
	}
	tl, _ := os.ReadFile(filepath.Join(vdir, runrecord.ReproTimelineFile))
	for _, want := range []string{"auto-repro timeline", "trigger: scx_ops_exit_kind", "enqueue_task_scx", "scheduler exit: error_bpf"} {
		if !strings.Contains(string(tl), want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
	if c, _ := os.ReadFile(filepath.Join(vdir, runrecord.ConsoleFile)); !strings.Contains(string(c), " --auto-repro") {
		t.Errorf("console: %s", c)
	}
	left, _ := filepath.Glob(filepath.Join(vdir, ".*"))
	if len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}

	// Off: no --auto-repro, no repro files.
	m, err = RunVariant(t.Context(), rundir, vs[0].Name, o)
	if err != nil || m.Verdict != runrecord.Fail {
		t.Fatalf("%v %+v", err, m)
	}
	v0 := runrecord.VariantDir(rundir, vs[0].Name)
	for _, f := range []string{runrecord.ReproStreamFile, runrecord.ReproTimelineFile} {
		if _, err := os.Stat(filepath.Join(v0, f)); err == nil {
			t.Errorf("%s written without --auto-repro", f)
		}
	}
	if c, _ := os.ReadFile(filepath.Join(v0, runrecord.ConsoleFile)); strings.Contains(string(c), "--auto-repro") {
		t.Errorf("console: %s", c)
	}

	// A second stream without probe frames: the timeline says so.
	os.WriteFile(fix, []byte("not a stream"), 0o644)
	os.Remove(filepath.Join(vdir, runrecord.MetaFile))
	if _, err := RunVariant(t.Context(), rundir, vs[1].Name, o); err != nil {
		t.Fatal(err)
	}
	if tl, _ := os.ReadFile(filepath.Join(vdir, runrecord.ReproTimelineFile)); !strings.Contains(string(tl), "no probe_meta frame") {
		t.Errorf("timeline of a stream without probes:\n%s", tl)
	}
	// Rerun with auto-repro off: the old repro files go.
	plan, _ := ReadPlan(rundir)
	plan.Variants[1].AutoRepro = false
	writePlan(rundir, plan, SlurmOptions{})
	os.Remove(filepath.Join(vdir, runrecord.MetaFile))
	if _, err := RunVariant(t.Context(), rundir, vs[1].Name, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vdir, runrecord.ReproStreamFile)); err == nil {
		t.Error("a stale repro.ktstr stayed")
	}
}
