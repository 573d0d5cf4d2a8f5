package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// The engine tests run the real ktstr-gauntlet binary through make, GNU
// parallel (locally and over ssh) and Slurm, with a fake ktstr-run that
// answers at once, so that no test here boots a guest. (The real
// ktstr-run's pipeline is tested in pkg/pipeline and by the QEMU tests.)

// binary builds ktstr-gauntlet once per test process into a directory of
// its own (internal/testenv), so that no real ktstr-run sits beside it.
func binary(t *testing.T) string {
	t.Helper()
	return testenv.Build(t, "ktstr-gauntlet")
}

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeRun is a stand-in for ktstr-run: it writes the --save file, prints
// a JSON verdict and a console line naming its host; a scheduler whose
// path contains "fail" fails, "none" gives no verdict, "slow" sleeps
// (recording its pid) so that a test can interrupt it. With --auto-repro
// a failing one also saves a second stream (repro.fixture, a stream with
// probe frames) beside --save's file, as ktstr-run does.
const fakeRun = `#!/bin/sh
save= sched= repro=
while [ $# -gt 0 ]; do
  case $1 in
    --save) save=$2; shift ;;
    --scheduler) sched=$2; shift ;;
    --auto-repro) repro=1 ;;
    --) shift; break ;;
  esac
  shift
done
[ -n "$save" ] && printf 'FAKE-STREAM' >"$save"
echo "console: fake guest on $(hostname) pid $$ ssh ${SSH_CONNECTION:-none}" >&2
case $sched in
  *slow*) echo $$ >>"$(dirname "$0")/slow.pids"; sleep 60 & wait; exit 0 ;;
  *fail*) [ -n "$repro" ] && cp "$(dirname "$0")/repro.fixture" "${save%.ktstr}.repro.ktstr"
    echo '{"verdict":{"result":"fail","reason":"fake: a check failed"}}'; echo "ktstr-run: FAIL: fake" >&2; exit 1 ;;
  *none*) echo "ktstr-run: NO VERDICT: fake: empty stream" >&2; exit 3 ;;
esac
echo '{"verdict":{"result":"pass","reason":"fake: 5 check(s) passed"}}'
`

// suiteDir writes the fake ktstr-run, fake schedulers and kernel, and a
// suite: 3 schedulers (one failing) x 2 scenarios x 2 presets = 12.
func suiteDir(t *testing.T, scheds ...string) (dir, suite, krun string) {
	t.Helper()
	dir = t.TempDir()
	krun = filepath.Join(dir, "fake-ktstr-run")
	os.WriteFile(krun, []byte(fakeRun), 0o755)
	os.WriteFile(filepath.Join(dir, "repro.fixture"), reproFixture(t), 0o644)
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("not a kernel"), 0o644)
	if len(scheds) == 0 {
		scheds = []string{"scx_ok", "scx_fail"}
	}
	list := []string{`{"name":"eevdf"}`}
	for _, s := range scheds {
		os.WriteFile(filepath.Join(dir, s), []byte("#!/bin/sh\n"), 0o755)
		list = append(list, fmt.Sprintf(`{"binary":%q,"args":["-v"]}`, s))
	}
	suite = filepath.Join(dir, "suite.json")
	os.WriteFile(suite, []byte(`{"schedulers":[`+strings.Join(list, ",")+`],"scenarios":["steady","mixed-burst"],
		"presets":["tiny-1llc","1n2l1c1t"],"kernels":[{"name":"k","path":"bzImage"}]}`), 0o644)
	return dir, suite, krun
}

// runG runs the binary; it returns the exit code, stdout and stderr.
func runG(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// reproFixture is a second boot's stream: probe frames and the trigger.
func reproFixture(t *testing.T) []byte {
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	kind := 1025
	for _, m := range []wire.Message{
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}}},
		wire.ProbeEvent{TimeNS: 5, CPU: 0, PID: 1, Comm: "fake", Func: "scx_ops_exit_kind", Trigger: true, ExitKind: &kind},
	} {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// checkRecord: every variant of the run has its four files and a meta
// that matches; the run has ended; the verdicts are the fake's; ktstr-run
// ran with --auto-repro (the default), and the failed variants hold the
// second stream and its timeline.
func checkRecord(t *testing.T, rundir, engine string, want int) *runrecord.Record {
	t.Helper()
	rec, err := runrecord.Read(rundir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Run.Engine != engine || rec.Run.Ended == nil || len(rec.Run.Variants) != want || len(rec.Metas) != want || len(rec.Missing) != 0 {
		t.Fatalf("record: engine %s ended %v, %d variants, %d metas, missing %v", rec.Run.Engine, rec.Run.Ended, len(rec.Run.Variants), len(rec.Metas), rec.Missing)
	}
	for _, m := range rec.Metas {
		dir := runrecord.VariantDir(rundir, m.Variant)
		for _, f := range []string{runrecord.StreamFile, runrecord.VerdictFile, runrecord.ConsoleFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", m.Variant, err)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(dir, runrecord.StreamFile)); string(b) != "FAKE-STREAM" {
			t.Errorf("%s: stream %q", m.Variant, b)
		}
		// By default every variant's ktstr-run reserves whole host LLCs and
		// reruns a scheduler failure with probes.
		b, _ := os.ReadFile(filepath.Join(dir, runrecord.ConsoleFile))
		if !strings.Contains(string(b), "console: fake guest") || !strings.Contains(string(b), " --reserve llcs") || !strings.Contains(string(b), " --auto-repro") {
			t.Errorf("%s: console %q", m.Variant, b)
		}
		_, err := os.Stat(filepath.Join(dir, runrecord.ReproStreamFile))
		tl, _ := os.ReadFile(filepath.Join(dir, runrecord.ReproTimelineFile))
		if m.Scheduler == "scx_fail" && (err != nil || !strings.Contains(string(tl), "trigger: scx_ops_exit_kind")) {
			t.Errorf("%s: no auto-repro record: %v\n%s", m.Variant, err, tl)
		}
		if m.Scheduler != "scx_fail" && err == nil {
			t.Errorf("%s passed, yet has %s", m.Variant, runrecord.ReproStreamFile)
		}
		wantV := runrecord.Pass
		if m.Scheduler == "scx_fail" {
			wantV = runrecord.Fail
		}
		if m.Verdict != wantV || m.KernelSHA256 == "" || m.Topology == "" || m.Host == "" || m.Ended.Before(m.Started) {
			t.Errorf("%s: %+v", m.Variant, m)
		}
		if (m.Scheduler == "eevdf") != (m.SchedulerSHA256 == "") {
			t.Errorf("%s: scheduler %s, hash %q: want a hash exactly when a scheduler binary ran", m.Variant, m.Scheduler, m.SchedulerSHA256)
		}
	}
	ents, _ := filepath.Glob(filepath.Join(rundir, "*", "*", "*", ".*partial*"))
	if len(ents) > 0 {
		t.Errorf("partial files left: %v", ents)
	}
	return rec
}

func TestEngineMake(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP: GNU make is not installed")
	}
	dir, suite, krun := suiteDir(t)
	rundir := filepath.Join(dir, "run")
	code, out, errs := runG(t, nil, "--ktstr-run", krun, "--rundir", rundir, "-j", "3", suite)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (a variant failed):\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "gauntlet: 12 variants: 8 pass, 4 fail, 0 no verdict, 0 error, 0 missing") {
		t.Errorf("summary:\n%s", out)
	}
	checkRecord(t, rundir, "make", 12)

	// The run directory is never overwritten silently.
	code, _, errs = runG(t, nil, "--ktstr-run", krun, "--rundir", rundir, suite)
	if code != 2 || !strings.Contains(errs, "exists and is not empty") {
		t.Errorf("second run into it: exit %d: %s", code, errs)
	}
	// --resume runs only what has no meta.json.
	keep := filepath.Join(runrecord.VariantDir(rundir, "eevdf/steady/tiny-1llc"), runrecord.MetaFile)
	before, _ := os.ReadFile(keep)
	os.Remove(filepath.Join(runrecord.VariantDir(rundir, "scx_ok/steady/tiny-1llc"), runrecord.MetaFile))
	code, out, errs = runG(t, nil, "--resume", "--rundir", rundir, suite)
	if code != 1 || strings.Count(errs, "run-variant") != 0 && !strings.Contains(errs, "scx_ok/steady/tiny-1llc") {
		t.Errorf("resume: exit %d\n%s\n%s", code, out, errs)
	}
	if n := strings.Count(errs, "PASS ") + strings.Count(errs, "FAIL "); n != 1 {
		t.Errorf("resume ran %d variants, want 1:\n%s", n, errs)
	}
	if after, _ := os.ReadFile(keep); !bytes.Equal(before, after) {
		t.Error("resume rewrote a finished variant")
	}
	checkRecord(t, rundir, "make", 12)
	// A changed suite refuses to resume; so does a resume with filters.
	os.WriteFile(suite, append(mustRead(t, suite), ' '), 0o644)
	if code, _, errs := runG(t, nil, "--resume", "--rundir", rundir, suite); code != 2 || !strings.Contains(errs, "changed since") {
		t.Errorf("resume with a changed suite: %d %s", code, errs)
	}
	if code, _, errs := runG(t, nil, "--resume", "--rundir", rundir, "--only", "eevdf"); code != 2 || !strings.Contains(errs, "do not apply") {
		t.Errorf("resume with --only: %d %s", code, errs)
	}
	// The Makefile is the user's too: make -C RUNDIR runs what is left,
	// then the summary, with make's exit status.
	os.Remove(filepath.Join(runrecord.VariantDir(rundir, "scx_fail/mixed-burst/1n2l1c1t"), runrecord.MetaFile))
	mk := exec.Command("make", "-C", rundir, "--no-print-directory")
	b, err := mk.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "FAIL       scx_fail/mixed-burst/1n2l1c1t") || !strings.Contains(string(b), "gauntlet: 12 variants") {
		t.Errorf("make -C RUNDIR: %v\n%s", err, b)
	}
}

// TestNoAutoRepro: --no-auto-repro, or the suite's "auto_repro": false,
// runs ktstr-run without --auto-repro: no second stream is recorded.
func TestNoAutoRepro(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP: GNU make is not installed")
	}
	dir, suite, krun := suiteDir(t)
	off := filepath.Join(dir, "off.json")
	os.WriteFile(off, bytes.Replace(mustRead(t, suite), []byte(`"kernels"`), []byte(`"auto_repro":false,"kernels"`), 1), 0o644)
	for i, args := range [][]string{{"--no-auto-repro", suite}, {off}} {
		rundir := filepath.Join(dir, fmt.Sprint("run", i))
		code, out, errs := runG(t, nil, append([]string{"--ktstr-run", krun, "--rundir", rundir, "--only", "scx_fail/steady"}, args...)...)
		if code != 1 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
		for _, v := range []string{"scx_fail/steady/tiny-1llc", "scx_fail/steady/1n2l1c1t"} {
			vdir := runrecord.VariantDir(rundir, v)
			if b := mustRead(t, filepath.Join(vdir, runrecord.ConsoleFile)); strings.Contains(string(b), "--auto-repro") {
				t.Errorf("%v: %s: ktstr-run got --auto-repro: %s", args, v, b)
			}
			for _, f := range []string{runrecord.ReproStreamFile, runrecord.ReproTimelineFile} {
				if _, err := os.Stat(filepath.Join(vdir, f)); err == nil {
					t.Errorf("%v: %s has %s", args, v, f)
				}
			}
		}
	}
	// --resume keeps the plan's choice: --no-auto-repro does not apply.
	if code, _, errs := runG(t, nil, "--resume", "--rundir", filepath.Join(dir, "run0"), "--no-auto-repro"); code != 2 || !strings.Contains(errs, "do not apply") {
		t.Errorf("--resume --no-auto-repro: %d %s", code, errs)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFiltersAndExitCodes(t *testing.T) {
	dir, suite, krun := suiteDir(t, "scx_ok", "scx_fail", "scx_none")
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--only", "scx_ok", "--exclude", "*/mixed-burst"}, 0, "2 variants: 2 pass"},
		{[]string{"--only", "scx_none/steady"}, 3, "2 variants: 0 pass, 0 fail, 2 no verdict"},
		{[]string{"--only", "scx_none/steady/tiny-1llc", "--only", "scx_fail/steady/tiny-1llc"}, 1, "2 variants: 0 pass, 1 fail, 1 no verdict"},
		{[]string{"--only", "nothing"}, 2, ""},
		{[]string{"--only", "[x"}, 2, ""},
		{[]string{"--engine", "pbs"}, 2, ""},
		{[]string{"--sshloginfile", "x"}, 2, ""},
		{[]string{"--budget", "40s", "--list"}, 0, "eevdf/"},
		{[]string{"--reserve", "llc"}, 2, ""},
		{[]string{"--resume", "--reserve", "cpus"}, 2, ""},
	} {
		rundir := filepath.Join(t.TempDir(), "r")
		code, out, errs := runG(t, nil, append(append([]string{"--ktstr-run", krun, "--rundir", rundir}, c.args...), suite)...)
		if code != c.code || !strings.Contains(out, c.out) {
			t.Errorf("%v: exit %d (want %d)\n%s\n%s", c.args, code, c.code, out, errs)
		}
		if c.code == 2 && (strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "ktstr-gauntlet: ")) {
			t.Errorf("%v: usage error is not one line: %q", c.args, errs)
		}
	}
	// --reserve cpus overrides the suite's default for every variant.
	rundir0 := filepath.Join(t.TempDir(), "r")
	if code, out, errs := runG(t, nil, "--ktstr-run", krun, "--rundir", rundir0, "--reserve", "cpus", "--only", "scx_ok/steady/1n2l1c1t", suite); code != 0 {
		t.Errorf("--reserve cpus: exit %d\n%s\n%s", code, out, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(runrecord.VariantDir(rundir0, "scx_ok/steady/1n2l1c1t"), runrecord.ConsoleFile)); !strings.Contains(string(b), " --reserve cpus") {
		t.Errorf("--reserve cpus: console %q", b)
	}
	// A ktstr-run that cannot start is an error record, exit 4.
	os.WriteFile(filepath.Join(dir, "broken-run"), []byte("#!/nonexistent/interpreter\n"), 0o755)
	rundir := filepath.Join(t.TempDir(), "r")
	code, out, _ := runG(t, nil, "--ktstr-run", filepath.Join(dir, "broken-run"), "--rundir", rundir, "--only", "eevdf/steady", suite)
	if code != 4 || !strings.Contains(out, "0 pass, 0 fail, 0 no verdict, 2 error") {
		t.Errorf("broken ktstr-run: %d\n%s", code, out)
	}
}

// TestInterrupt: SIGINT to ktstr-gauntlet ends every running variant
// (its ktstr-run gets SIGTERM), writes no record for them, and exits 4
// naming --resume.
func TestInterrupt(t *testing.T) {
	for _, engine := range []string{"make", "parallel"} {
		t.Run(engine, func(t *testing.T) {
			if _, err := exec.LookPath(engine); err != nil {
				t.Skipf("SKIP: %s is not installed", engine)
			}
			interrupt(t, engine)
		})
	}
}

func interrupt(t *testing.T, engine string) {
	dir, suite, krun := suiteDir(t, "scx_slow")
	rundir := filepath.Join(dir, "run")
	cmd := exec.Command(binary(t), "--engine", engine, "--ktstr-run", krun, "--rundir", rundir, "-j", "2", "--only", "scx_slow", suite)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(dir, "slow.pids")
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(pids); strings.Count(string(b), "\n") >= 2 {
			break
		}
		if i > 600 {
			cmd.Process.Kill()
			t.Fatalf("the slow variants did not start: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(errb.String(), "--resume") {
		t.Errorf("exit %v: %s", err, errb.String())
	}
	for _, f := range strings.Fields(string(mustRead(t, pids))) {
		var pid int
		fmt.Sscan(f, &pid)
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("fake ktstr-run %d still runs", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	rec, err := runrecord.Read(rundir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Metas) != 0 || rec.Run.Ended != nil {
		t.Errorf("interrupted variants recorded: %+v, ended %v", rec.Metas, rec.Run.Ended)
	}
}

func numCPU() int { return runtime.NumCPU() }
