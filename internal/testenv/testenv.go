package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Module is the module whose repository the fixtures' defaults are found
// beside and whose ./cmd/<tool> Build builds.
const Module = "github.com/ktstr-go/ktstr"

// The fixture variables, as the Makefile exports them.
const (
	KernelVar     = "KTSTR_KERNEL"
	VmlinuxVar    = "KTSTR_VMLINUX"
	SystemMapVar  = "KTSTR_SYSTEM_MAP"
	SchedulersVar = "KTSTR_SCHEDULERS"
	BinVar        = "KTSTR_BIN"
)

// SkipPrefix starts the reason of every skip for a missing fixture.
const SkipPrefix = "SKIP (fixture missing): "

// defaults are the Makefile's fixture defaults, relative to its SHARED
// directory (../shared beside the repository).
var defaults = map[string]string{
	KernelVar:     "kernels/linux-6.12-ktstr/bzImage",
	VmlinuxVar:    "kernels/linux-6.12-ktstr/vmlinux",
	SystemMapVar:  "kernels/linux-6.12-ktstr/System.map",
	SchedulersVar: "schedulers",
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// Root returns the repository's top directory: the nearest directory at
// or above the working directory (a test runs in its package's
// directory) whose go.mod declares Module.
func Root() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = fmt.Errorf("testenv: working directory: %w", err)
			return
		}
		for {
			if isModuleRoot(filepath.Join(dir, "go.mod")) {
				rootDir = dir
				return
			}
			up := filepath.Dir(dir)
			if up == dir {
				rootErr = fmt.Errorf("testenv: no go.mod for %s at or above the working directory", Module)
				return
			}
			dir = up
		}
	})
	return rootDir, rootErr
}

func isModuleRoot(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 && fs[0] == "module" {
			return strings.Trim(fs[1], `"`) == Module
		}
	}
	return false
}

// Lookup returns the fixture variable v's value: the environment's when
// it is set, else the Makefile's default when the ../shared fixture tree
// holds the kernel (the Makefile's own condition), else "". KTSTR_BIN has
// no default.
func Lookup(v string) string {
	if p := os.Getenv(v); p != "" {
		return p
	}
	rel, ok := defaults[v]
	if !ok {
		return ""
	}
	root, err := Root()
	if err != nil {
		return ""
	}
	shared := filepath.Join(filepath.Dir(root), "shared")
	if _, err := os.Stat(filepath.Join(shared, defaults[KernelVar])); err != nil {
		return ""
	}
	return filepath.Join(shared, rel)
}

// Missing returns why fixture variable v gives no usable path ("" when it
// does): unset with no default, or naming a path that does not exist.
func Missing(v string) string {
	p := Lookup(v)
	if p == "" {
		return fmt.Sprintf("%s is not set: point it at the fixture (make exports the ../shared fixtures)", v)
	}
	if _, err := os.Stat(p); err != nil {
		return fmt.Sprintf("%s=%s: %v", v, p, err)
	}
	return ""
}

// Need returns fixture variable v's path, or skips t with
// SkipPrefix + what is missing, and why the test needs it.
func Need(t testing.TB, v, why string) string {
	t.Helper()
	if m := Missing(v); m != "" {
		if why != "" {
			m += "; " + why
		}
		t.Skip(SkipPrefix + m)
	}
	return Lookup(v)
}

// Kernel returns the fixture bzImage ($KTSTR_KERNEL) or skips t.
func Kernel(t testing.TB) string { t.Helper(); return Need(t, KernelVar, "") }

// Vmlinux returns the fixture vmlinux ($KTSTR_VMLINUX) or skips t.
func Vmlinux(t testing.TB) string { t.Helper(); return Need(t, VmlinuxVar, "") }

// SystemMap returns the fixture System.map ($KTSTR_SYSTEM_MAP) or skips t.
func SystemMap(t testing.TB) string { t.Helper(); return Need(t, SystemMapVar, "") }

// Scheduler returns the fixture scheduler binary name from
// $KTSTR_SCHEDULERS or skips t.
func Scheduler(t testing.TB, name string) string {
	t.Helper()
	dir := Need(t, SchedulersVar, name+" needed")
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skip(SkipPrefix + fmt.Sprintf("scheduler %s: %v", p, err))
	}
	return p
}

type built struct {
	once sync.Once
	path string
	err  error
}

var (
	builds   sync.Map // tool name -> *built
	buildMu  sync.Mutex
	buildDir string
)

// Tool returns the ktstr tool name to run: $KTSTR_BIN/name when
// KTSTR_BIN holds it (what the Makefile built), else Build's. A
// KTSTR_BIN that lacks the tool is logged.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv(BinVar); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Logf("%s=%s has no %s; building one", BinVar, dir, name)
	}
	return Build(t, name)
}

// Build builds ./cmd/name of the repository (CGO_ENABLED=0, as the
// Makefile builds) once per test process, into a directory of its own (so
// no other tool sits beside it), and returns its path; a failed build
// fails t, and every later caller too.
func Build(t testing.TB, name string) string {
	t.Helper()
	p, err := build(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func build(name string) (string, error) {
	v, _ := builds.LoadOrStore(name, &built{})
	b := v.(*built)
	b.once.Do(func() {
		root, err := Root()
		if err != nil {
			b.err = err
			return
		}
		buildMu.Lock()
		if buildDir == "" {
			buildDir, err = os.MkdirTemp("", "ktstr-testenv-")
		}
		top := buildDir
		buildMu.Unlock()
		if err != nil {
			b.err = fmt.Errorf("testenv: build %s: %w", name, err)
			return
		}
		dir := filepath.Join(top, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.err = fmt.Errorf("testenv: build %s: %w", name, err)
			return
		}
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("testenv: go build ./cmd/%s: %v\n%s", name, err, msg)
			return
		}
		b.path = out
	})
	return b.path, b.err
}

// RemoveBuilt removes every tool Build built in this process. A package
// with its own TestMain calls it after m.Run; others use Main.
func RemoveBuilt() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Main is a TestMain for packages that need nothing else: it runs the
// tests, removes what Build built, and exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBuilt()
	os.Exit(code)
}

// Result is what a tool run by Run printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int // the exit status; -1 when a signal ended it
}

// Run runs cmd to its end with its standard output and error captured
// (cmd.Stdin and cmd.Env as the caller set them). A tool that could not be
// started fails the test; any exit status is the caller's to judge.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", cmd.Path, err)
	}
	return Result{out.String(), errb.String(), code}
}
