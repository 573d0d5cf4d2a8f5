package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/report"
)

const runs = "../../pkg/report/testdata/runs"

// reportBin returns the ktstr-report to test: $KTSTR_BIN/ktstr-report when the
// Makefile built it, else one built once per test process (internal/testenv).
func reportBin(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "ktstr-report")
}

func TestMain(m *testing.M) { testenv.Main(m) }

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, bin string, args ...string) result {
	t.Helper()
	r := testenv.Run(t, exec.Command(bin, args...))
	return result{r.Stdout, r.Stderr, r.Code}
}

func TestExitCodes(t *testing.T) {
	bin := reportBin(t)
	ro := t.TempDir()
	os.Chmod(ro, 0o555)
	notDir := filepath.Join(t.TempDir(), "f")
	os.WriteFile(notDir, nil, 0o644)
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"all pass", []string{runs + "/pass"}, 0, "3 variants: 3 pass", ""},
		{"all pass, json", []string{"--format", "json", runs + "/pass"}, 0, `"pass": 3`, ""},
		{"a failure", []string{runs + "/slower"}, 1, "FAIL", "not all variants passed: 3 variants: 2 pass, 1 fail"},
		{"broken variants", []string{"-f", "junit", runs + "/mixed"}, 1, "<testsuites", "1 error"},
		{"empty run directory", []string{t.TempDir()}, 1, "0 variants", "not all variants passed"},
		{"no operand", nil, 2, "", "want one RUNDIR"},
		{"two operands", []string{runs + "/pass", runs + "/mixed"}, 2, "", "want one RUNDIR"},
		{"bad format", []string{"--format", "pdf", runs + "/pass"}, 2, "", "unknown format"},
		{"bad flag", []string{"--frobnicate", runs + "/pass"}, 2, "", "see --help"},
		{"missing run directory", []string{runs + "/nope"}, 2, "", "run directory"},
		{"a file, not a directory", []string{notDir}, 2, "", "not a directory"},
		{"unwritable output", []string{"-o", filepath.Join(ro, "sub", "r.html"), runs + "/pass"}, 2, "", "write report"},
		{"compare: regression", []string{"compare", runs + "/pass", runs + "/slower"}, 1, "regressions:", "5 regression(s)"},
		{"compare: improvement", []string{"compare", runs + "/slower", runs + "/pass"}, 0, "improvements:", ""},
		{"compare: same", []string{"compare", runs + "/pass", runs + "/pass"}, 0, "compare: 0 regressions, 0 improvements", ""},
		{"compare: wide gates keep the verdict", []string{"compare", "--rel", "total_iterations=90", "--rel", "worst_iterations_per_worker=90%",
			"--abs", "worst_p99_wake_latency_us=1000", "--abs", "worst_median_wake_latency_us=1000", runs + "/pass", runs + "/slower"}, 1, "pass -> fail", "1 regression(s)"},
		{"compare: json", []string{"compare", "-f", "json", runs + "/pass", runs + "/slower"}, 1, `"regressions": 5`, ""},
		{"options after the operand", []string{runs + "/pass", "--format", "json"}, 0, `"pass": 3`, ""},
		{"compare: options after the operands", []string{"compare", runs + "/pass", runs + "/slower", "-f", "json", "--rel", "wall_s=1"}, 1, `"regressions": 5`, ""},
		{"compare: one operand", []string{"compare", runs + "/pass"}, 2, "", "want two run directories"},
		{"compare: unknown metric", []string{"compare", "--abs", "speed=1", runs + "/pass", runs + "/pass"}, 2, "", "unknown metric"},
		{"compare: bad number", []string{"compare", "--rel", "wall_s=-3", runs + "/pass", runs + "/pass"}, 2, "", "not a number"},
		{"compare: bad format", []string{"compare", "-f", "html", runs + "/pass", runs + "/pass"}, 2, "", "not text or json"},
		{"compare: missing B", []string{"compare", runs + "/pass", runs + "/nope"}, 2, "", "run directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, bin, c.args...)
			if r.code != c.code || !strings.Contains(r.stdout, c.stdout) || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("exit %d, want %d\nstdout (want %q):\n%s\nstderr (want %q):\n%s", r.code, c.code, c.stdout, r.stdout, c.stderr, r.stderr)
			}
			if c.code == 2 && r.stdout != "" {
				t.Errorf("a usage or I/O error printed a report:\n%s", r.stdout)
			}
		})
	}
}

// TestOutputFile: -o writes the whole report into FILE (renamed into place,
// no temporary left beside it), in each format, and stdout stays empty.
func TestOutputFile(t *testing.T) {
	bin := reportBin(t)
	dir := t.TempDir()
	for _, f := range []string{"text", "json", "junit", "html"} {
		out := filepath.Join(dir, "report."+f)
		r := run(t, bin, "--format", f, "-o", out, runs+"/mixed")
		if r.code != 1 || r.stdout != "" {
			t.Fatalf("%s: exit %d stdout %q stderr %q", f, r.code, r.stdout, r.stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		switch f {
		case "json":
			if !json.Valid(b) {
				t.Errorf("json: not JSON")
			}
		case "junit":
			var v struct {
				Tests int `xml:"tests,attr"`
			}
			if err := xml.Unmarshal(b, &v); err != nil || v.Tests != 7 {
				t.Errorf("junit: %v, tests %d", err, v.Tests)
			}
		case "html":
			if !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) || !bytes.Contains(b, []byte("</html>")) {
				t.Errorf("html: not a whole page")
			}
		case "text":
			if !bytes.Contains(b, []byte("7 variants: 2 pass, 2 fail, 2 no verdict, 1 error")) {
				t.Errorf("text: %s", b)
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files left: %v", names)
	}
}

// TestBrokenPipe: a reader that goes away ends ktstr-report by SIGPIPE,
// as for other filters, not by an error message.
func TestBrokenPipe(t *testing.T) {
	bin := reportBin(t)
	cmd := exec.Command(bin, "-f", "html", runs+"/mixed")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pr.Close()
	err = cmd.Run()
	pw.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !(ws.Signaled() && ws.Signal() == syscall.SIGPIPE) && ee.ExitCode() != 2 {
		t.Errorf("wait status %v, stderr %q", ws, errb.String())
	}
}

// TestManPage: man/ktstr-report.1 documents every flag, both commands'
// and every exit status.
func TestManPage(t *testing.T) {
	b, err := os.ReadFile("../../man/ktstr-report.1")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	a := app()
	flags := a.Flags
	for _, c := range a.Commands {
		flags = append(flags, c.Flags...)
		if !strings.Contains(man, ".B "+c.Name) && !strings.Contains(man, "ktstr-report "+c.Name) {
			t.Errorf("command %s is not in the man page", c.Name)
		}
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			want := `\-\-` + strings.ReplaceAll(n, "-", `\-`)
			if len(n) == 1 {
				want = `\-` + n
			}
			if !strings.Contains(man, want) {
				t.Errorf("flag %s is not in the man page", want)
			}
		}
	}
	for _, c := range []int{0, exitNotAllPass, exitIO} {
		if !strings.Contains(man, fmt.Sprintf(".TP\n.B %d\n", c)) {
			t.Errorf("exit status %d is not in the man page", c)
		}
	}
	for _, m := range report.Metrics() {
		if !strings.Contains(man, report.ManEntry(m)) {
			t.Errorf("metric %s is not in the man page as\n%s", m.Name, report.ManEntry(m))
		}
	}
}
