package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
)

// initBin returns the ktstr-init to test: $KTSTR_BIN/ktstr-init when the
// Makefile built it, else one built once per test process (internal/testenv).
func initBin(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "ktstr-init")
}

func TestMain(m *testing.M) { testenv.Main(m) }

// TestHostCLI runs the real binary on the host (not PID 1): catalog
// listing, scenario validation and the exit codes of its man page.
func TestHostCLI(t *testing.T) {
	bin := initBin(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"dance"}}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args       []string
		code       int
		wantOut    string
		wantStderr string
	}{
		{[]string{"--list-scenarios"}, 0, "steady\t", ""},
		{[]string{"--check-scenario", "mixed-burst"}, 0, `"name": "mixed-burst"`, ""},
		{[]string{"--check-scenario", "../../pkg/scenario/scenarios/steady.json"}, 0, `"hold_ms": 3000`, ""},
		{[]string{"--check-scenario", bad}, 1, "", `unknown work type "dance"`},
		{[]string{"--check-scenario", "nope"}, 1, "", "not in the catalog (have: affinity_change"},
		{nil, 2, "", "runs as PID 1 inside a guest"},
		{[]string{"--bogus"}, 2, "", "see --help"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(out.String(), c.wantOut) || !strings.Contains(errb.String(), c.wantStderr) {
			t.Errorf("ktstr-init %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, out.String(), errb.String(), c.code, c.wantOut, c.wantStderr)
		}
		if strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
			t.Errorf("ktstr-init %q: error is more than one line: %q", c.args, errb.String())
		}
	}
}

// TestStallWatchProcess: the task-stall scan's process protocol. Run as
// /init __ktstr_stallwatch MS, it scans until its standard input ends,
// then prints one {"done":{...}} line with the task_stall check.
func TestStallWatchProcess(t *testing.T) {
	bin := initBin(t)
	cmd := exec.Command(bin, "__ktstr_stallwatch", "4000")
	cmd.Stdin = strings.NewReader("") // ends at once: one scan, then the result
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if !strings.HasPrefix(last, `{"done":{"name":"task_stall",`) || !strings.Contains(last, `"threshold":4000`) {
		t.Fatalf("last line %q", last)
	}
	for _, bad := range [][]string{{"__ktstr_stallwatch"}, {"__ktstr_stallwatch", "0"}, {"__ktstr_stallwatch", "x"}} {
		if err := exec.Command(bin, bad...).Run(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
