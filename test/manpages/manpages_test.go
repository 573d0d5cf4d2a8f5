// Package manpages checks the examples in man/*.1 and man/*.5 as a reader
// gets them: each example block is rendered with groff(1) (roff eats plain
// quotes in macro arguments and may turn a minus sign and an apostrophe into typographic
// characters), then JSON examples must parse, shell examples must pass
// `bash -n`, and those marked runnable run here against the built tools.
//
// Every .nf/.fi or .EX/.EE block in a man page must be preceded by a roff
// comment naming its kind, so that a new example cannot go unchecked:
//
//	.\" example: shell        a shell example (bash -n)
//	.\" example: shell run    ... that also runs here without a VM
//	.\" example: json         one JSON value, or one JSON object per line
//	.\" example: text         output, a command line for the kernel, a hex dump
//
// Inline JSON shapes in macro lines (.B {"type": "spin"} in
// ktstr-scenario(5)) must keep every quote once rendered.
package manpages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

type example struct {
	page string
	line int    // of the .nf in the source
	kind string // shell, json, text
	run  bool
	src  []string // roff lines between .nf and .fi
	text string   // rendered
}

var marker = regexp.MustCompile(`^\.\\"\s*example:\s*(shell|json|text)(\s+run)?\s*$`)

func pages(t *testing.T) []string {
	t.Helper()
	ps, err := filepath.Glob("../../man/*.[15]")
	if err != nil || len(ps) == 0 {
		t.Fatalf("no man pages found: %v", err)
	}
	return ps
}

func needGroff(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("SKIP LOUDLY: groff not installed (apt-get install groff-base): man page examples not checked")
	}
}

// render renders roff lines with the man macros to plain UTF-8 text, as
// man(1) shows them, without the page header and footer, dedented.
func render(t *testing.T, lines []string) string {
	t.Helper()
	in := ".TH T 1\n" + strings.Join(lines, "\n") + "\n"
	cmd := exec.Command("groff", "-man", "-Tutf8", "-P-cbou", "-rLL=400n", "-rcR=1")
	cmd.Stdin = strings.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("groff: %v: %s", err, errb.String())
	}
	var body []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "T(1)") || strings.HasSuffix(strings.TrimSpace(l), "T(1)") {
			continue
		}
		body = append(body, strings.TrimRight(l, " "))
	}
	for len(body) > 0 && body[0] == "" {
		body = body[1:]
	}
	for len(body) > 0 && body[len(body)-1] == "" {
		body = body[:len(body)-1]
	}
	indent := -1
	for _, l := range body {
		if l == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range body {
		if len(l) >= indent && indent > 0 {
			body[i] = l[indent:]
		}
	}
	return strings.Join(body, "\n") + "\n"
}

// examples extracts every example block of the man pages.
func examples(t *testing.T) []example {
	t.Helper()
	var out []example
	for _, p := range pages(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			l := lines[i]
			if l != ".nf" && l != ".EX" {
				continue
			}
			end := ".fi"
			if l == ".EX" {
				end = ".EE"
			}
			ex := example{page: filepath.Base(p), line: i + 1}
			// The marker sits just above, before any .PP/.RS/.ft lines.
			for j := i - 1; j >= 0 && j >= i-4; j-- {
				if m := marker.FindStringSubmatch(lines[j]); m != nil {
					ex.kind, ex.run = m[1], m[2] != ""
					break
				}
			}
			k := i + 1
			for ; k < len(lines) && lines[k] != end; k++ {
				ex.src = append(ex.src, lines[k])
			}
			if k == len(lines) {
				t.Errorf("%s:%d: %s without %s", ex.page, ex.line, l, end)
			}
			if ex.kind == "" {
				t.Errorf("%s:%d: example block without a `.\\\" example: shell|json|text` comment above it", ex.page, ex.line)
			}
			i = k
			out = append(out, ex)
		}
	}
	return out
}

// sourceLint reports characters that render differently on other groff
// set-ups inside shell and JSON examples: '-' (a hyphen, U+2010, in some
// UTF-8 set-ups; write \-) and '\” (a right quote; write \(aq).
func sourceLint(ex example) []string {
	var bad []string
	for i, l := range ex.src {
		if strings.HasPrefix(l, ".") {
			continue
		}
		for j := 0; j < len(l); j++ {
			switch {
			case l[j] == '\\':
				j++ // an escape: \- \e \(aq ...
			case l[j] == '-':
				bad = append(bad, fmt.Sprintf("%s:%d: bare '-' in %q: write \\-", ex.page, ex.line+1+i, l))
				j = len(l)
			case l[j] == '\'':
				bad = append(bad, fmt.Sprintf("%s:%d: bare ' in %q: write \\(aq", ex.page, ex.line+1+i, l))
				j = len(l)
			}
		}
	}
	return bad
}

func TestManPageExamples(t *testing.T) {
	needGroff(t)
	exs := examples(t)
	if len(exs) < 10 {
		t.Fatalf("found only %d example blocks", len(exs))
	}
	counts := map[string]int{}
	for i := range exs {
		ex := &exs[i]
		ex.text = render(t, append([]string{".nf"}, ex.src...))
		counts[ex.kind]++
		where := fmt.Sprintf("%s:%d", ex.page, ex.line)
		if ex.kind == "shell" || ex.kind == "json" {
			for _, b := range sourceLint(*ex) {
				t.Error(b)
			}
			for _, r := range ex.text {
				if r > 0x7e || (r < 0x20 && r != '\n') {
					t.Errorf("%s: rendered example holds %q, which does not paste into a shell or parser:\n%s", where, r, ex.text)
					break
				}
			}
		}
		switch ex.kind {
		case "json":
			if err := checkJSON(ex.text); err != nil {
				t.Errorf("%s: rendered JSON example does not parse: %v\n%s", where, err, ex.text)
			}
		case "shell":
			cmd := exec.Command("bash", "-n")
			cmd.Stdin = strings.NewReader(ex.text)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: rendered shell example fails bash -n: %v %s\n%s", where, err, out, ex.text)
			}
		}
	}
	t.Logf("example blocks: %v", counts)
}

// checkJSON accepts one JSON value, or one JSON value per non-empty line.
func checkJSON(s string) error {
	if json.Valid([]byte(s)) {
		return nil
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if !json.Valid([]byte(l)) {
			var v any
			return fmt.Errorf("line %q: %v", l, json.Unmarshal([]byte(l), &v))
		}
	}
	return nil
}

// Inline JSON shapes: macro lines such as .B {"op": "set_weight", "cgroup":
// "CG", "weight": W} are templates (upper-case placeholders, "..."), but
// every key and every string must keep its quotes once rendered.
var (
	bareKey   = regexp.MustCompile(`[{,]\s*[A-Za-z_]+\s*:`)
	bareValue = regexp.MustCompile(`:\s*([a-z][a-z_]*)\s*[,}\]]`)
	jsonish   = regexp.MustCompile(`\{\s*"`)
)

func TestManPageInlineJSON(t *testing.T) {
	needGroff(t)
	n := 0
	for _, p := range pages(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, ".") || strings.HasPrefix(l, `.\"`) || !strings.Contains(l, "{") {
				continue
			}
			text := strings.TrimSpace(render(t, []string{l}))
			if !jsonish.MatchString(text) && !strings.Contains(l, `\(dq`) && !strings.Contains(l, `{"`) {
				continue
			}
			n++
			where := fmt.Sprintf("%s:%d", filepath.Base(p), i+1)
			if strings.Count(text, `"`)%2 != 0 {
				t.Errorf("%s: rendered %q has unbalanced quotes (write \\(dq in macro arguments)", where, text)
			}
			if m := bareKey.FindString(text); m != "" {
				t.Errorf("%s: rendered %q has an unquoted key %q (write \\(dq in macro arguments)", where, text, m)
			}
			for _, m := range bareValue.FindAllStringSubmatch(text, -1) {
				if m[1] != "true" && m[1] != "false" && m[1] != "null" {
					t.Errorf("%s: rendered %q has an unquoted string %q (write \\(dq in macro arguments)", where, text, m[1])
				}
			}
			if !regexp.MustCompile(`[A-Z]{1,}|\.\.\.`).MatchString(text) && !json.Valid([]byte(text)) {
				t.Errorf("%s: rendered %q has no placeholder yet is not JSON", where, text)
			}
		}
	}
	if n == 0 {
		t.Fatal("no inline JSON found: the scan is broken")
	}
	t.Logf("%d inline JSON shapes checked", n)
}

// TestManPageExamplesRun runs the examples marked runnable, in a scratch
// directory with the built tools first on PATH, a private cache and lock
// directory, the fixture scx_simple as ./scx_simple, a small valid
// recording as run.ktstr, and two run directories (ktstr-report's
// fixtures) as runs/a (all pass) and runs/b (one slower, one failing).
func TestManPageExamplesRun(t *testing.T) {
	needGroff(t)
	binDir := os.Getenv("KTSTR_BIN")
	if binDir == "" {
		t.Skip("SKIP LOUDLY: KTSTR_BIN not set (make all, then run with the Makefile's environment): runnable man page examples did not run")
	}
	for _, tool := range []string{"ktstr-mkinitramfs", "ktstr-decode", "ktstr-hostlock", "ktstr-init", "ktstr-report"} {
		if _, err := os.Stat(filepath.Join(binDir, tool)); err != nil {
			t.Skipf("SKIP LOUDLY: %s not built in %s: runnable man page examples did not run", tool, binDir)
		}
	}
	sched := testenv.Scheduler(t, "scx_simple")
	for _, tool := range []string{"cpio", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP LOUDLY: %s not installed: runnable man page examples did not run", tool)
		}
	}
	ran := 0
	for _, ex := range examples(t) {
		if !ex.run {
			continue
		}
		ex.text = render(t, append([]string{".nf"}, ex.src...))
		dir := t.TempDir()
		b, err := os.ReadFile(sched)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "scx_simple"), b, 0o755)
		os.WriteFile(filepath.Join(dir, "run.ktstr"), recording(t), 0o644)
		copyTree(t, "../../pkg/report/testdata/runs/pass", filepath.Join(dir, "runs", "a"))
		copyTree(t, "../../pkg/report/testdata/runs/slower", filepath.Join(dir, "runs", "b"))
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", ex.text)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"PATH="+binDir+":"+os.Getenv("PATH"),
			"KTSTR_CACHE_DIR="+filepath.Join(dir, "cache"),
			"KTSTR_LOCK_DIR="+filepath.Join(dir, "locks"),
			"KTSTR_INIT=",
		)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s:%d: example failed: %v\n--- example\n%s--- output\n%s", ex.page, ex.line, err, ex.text, out)
			continue
		}
		ran++
		t.Logf("%s:%d ran:\n%s", ex.page, ex.line, ex.text)
	}
	if ran == 0 {
		t.Fatal("no runnable example ran")
	}
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// recording is a small clean stream, as ktstr-boot writes it.
func recording(t *testing.T) []byte {
	var b bytes.Buffer
	e := wire.NewEncoder(&b)
	zero := 0
	for _, m := range []wire.Message{
		wire.GuestReady{Kernel: "6.12.0", CPUs: 2, MemoryKiB: 512 << 10, InitVersion: "test"},
		wire.Phase{Phase: "scheduler_attached", Detail: "scx_simple"},
		wire.Output{Stream: wire.StreamStdout, Program: wire.ProgramScheduler, Data: []byte("local=12 global=3\n")},
		wire.CheckResult{Name: "starvation", Pass: true, Threshold: 2000, Observed: 3},
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}}},
		wire.ProbeEvent{TimeNS: 5e9, CPU: 1, PID: 40, Comm: "kworker/1:1", Func: "scx_ops_exit_kind", Trigger: true},
		wire.SchedExit{Kind: 64, KindName: "unreg", Reason: "unregistered from user space", ExitCode: &zero},
		wire.GuestExit{Code: 0},
	} {
		if err := e.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}
