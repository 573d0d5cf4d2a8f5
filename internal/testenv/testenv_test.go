package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestRoot(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if !isModuleRoot(filepath.Join(root, "go.mod")) {
		t.Fatalf("Root() = %s: its go.mod does not declare %s", root, Module)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv", "doc.go")); err != nil {
		t.Fatalf("Root() = %s is not this repository: %v", root, err)
	}
}

func TestIsModuleRoot(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, gomod string
		want        bool
	}{
		{"this module", "module " + Module + "\n\ngo 1.22\n", true},
		{"quoted", "// c\nmodule \"" + Module + "\"\n", true},
		{"another module", "module example.com/other\n", false},
		{"prefix only", "module " + Module + "/sub\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tc.gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := isModuleRoot(p); got != tc.want {
				t.Errorf("isModuleRoot(%q) = %v, want %v", tc.gomod, got, tc.want)
			}
		})
	}
	if isModuleRoot(filepath.Join(dir, "absent")) {
		t.Error("a missing go.mod counts as the module root")
	}
}

// TestLookupMissingNeed covers the environment winning, a set variable
// naming nothing, and the skip that follows.
func TestLookupMissingNeed(t *testing.T) {
	present := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(present, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct {
		name, val   string
		wantMissing string // substring; "" means not missing
	}{
		{"set and present", present, ""},
		{"set to a missing path", absent, "KTSTR_KERNEL=" + absent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(KernelVar, tc.val)
			if got := Lookup(KernelVar); got != tc.val {
				t.Errorf("Lookup = %q, want %q (the environment wins)", got, tc.val)
			}
			m := Missing(KernelVar)
			if tc.wantMissing == "" && m != "" || tc.wantMissing != "" && !strings.Contains(m, tc.wantMissing) {
				t.Errorf("Missing = %q, want %q", m, tc.wantMissing)
			}
			var got string
			skipped := runSub(t, func(st testing.TB) { got = Kernel(st) })
			if skipped != (tc.wantMissing != "") {
				t.Errorf("Kernel skipped = %v, want %v", skipped, tc.wantMissing != "")
			}
			if !skipped && got != tc.val {
				t.Errorf("Kernel = %q, want %q", got, tc.val)
			}
		})
	}
}

// TestUnsetFallsBackToMakefileDefault: an unset variable means the
// ../shared default exactly when that tree holds the kernel, as in the
// Makefile; KTSTR_BIN has no default.
func TestUnsetFallsBackToMakefileDefault(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(filepath.Dir(root), "shared")
	_, statErr := os.Stat(filepath.Join(shared, defaults[KernelVar]))
	for v, rel := range defaults {
		t.Setenv(v, "")
		want := ""
		if statErr == nil {
			want = filepath.Join(shared, rel)
		}
		if got := Lookup(v); got != want {
			t.Errorf("Lookup(%s) unset = %q, want %q", v, got, want)
		}
	}
	t.Setenv(BinVar, "")
	if got := Lookup(BinVar); got != "" {
		t.Errorf("Lookup(KTSTR_BIN) unset = %q, want \"\"", got)
	}
	if statErr != nil {
		if m := Missing(KernelVar); !strings.Contains(m, "KTSTR_KERNEL is not set") {
			t.Errorf("Missing unset = %q", m)
		}
	}
}

func TestSchedulerSkips(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scx_simple"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SchedulersVar, dir)
	var got string
	if runSub(t, func(st testing.TB) { got = Scheduler(st, "scx_simple") }) || got != filepath.Join(dir, "scx_simple") {
		t.Errorf("present scheduler: got %q", got)
	}
	if !runSub(t, func(st testing.TB) { Scheduler(st, "scx_absent") }) {
		t.Error("a missing scheduler did not skip")
	}
}

// TestToolPrefersBin: a KTSTR_BIN holding the tool is used as is,
// nothing is built.
func TestToolPrefersBin(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ktstr-nosuchtool")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinVar, dir)
	if got := Tool(t, "ktstr-nosuchtool"); got != p {
		t.Errorf("Tool = %q, want %q", got, p)
	}
}

// TestBuildOnce builds a real tool: once, into a directory of its own, and
// a failed build fails every caller.
func TestBuildOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: no go build")
	}
	t.Setenv(BinVar, "")
	a := Tool(t, "ktstr-decode")
	b := Build(t, "ktstr-decode")
	if a != b {
		t.Fatalf("two builds: %s and %s", a, b)
	}
	ents, err := os.ReadDir(filepath.Dir(a))
	if err != nil || len(ents) != 1 {
		t.Fatalf("build directory holds %v (%v), want the tool alone", ents, err)
	}
	if out, err := exec.Command(a, "--help").CombinedOutput(); err != nil {
		t.Fatalf("%s --help: %v\n%s", a, err, out)
	}
	if _, err := build("ktstr-nosuchtool"); err == nil {
		t.Fatal("building a tool that does not exist succeeded")
	}
	if _, err := build("ktstr-nosuchtool"); err == nil || !strings.Contains(err.Error(), "ktstr-nosuchtool") {
		t.Fatalf("second try: %v", err)
	}
}

// recorder is a testing.TB whose Skip is recorded and ends the helper's
// goroutine, so that the expected skips here do not show as skipped tests
// in test/unit.sh's report.
type recorder struct {
	testing.TB
	skipped bool
	reason  string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped, r.reason = true, fmt.Sprint(args...)
	runtime.Goexit()
}

// runSub runs f with a recorder and says whether it skipped; a skip's
// reason must start with SkipPrefix.
func runSub(t *testing.T, f func(testing.TB)) (skipped bool) {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	if r.skipped && !strings.HasPrefix(r.reason, SkipPrefix) {
		t.Errorf("skip reason %q does not start with %q", r.reason, SkipPrefix)
	}
	return r.skipped
}

func TestMain(m *testing.M) { Main(m) }
