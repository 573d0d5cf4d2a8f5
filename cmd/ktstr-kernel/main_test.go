package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain: with KTSTR_KERNEL_CLI=1 the test binary is ktstr-kernel, so
// the tests below run the real command line as a process.
func TestMain(m *testing.M) {
	if os.Getenv("KTSTR_KERNEL_CLI") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append([]string{"KTSTR_KERNEL_CLI=1"}, env...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	env := []string{"KTSTR_KERNEL_CACHE_DIR=" + cache}
	good := filepath.Join(dir, "good.config")
	frag, _, _ := runCLI(t, env, "fragment")
	os.WriteFile(good, []byte(frag), 0o644)
	noScx := filepath.Join(dir, "noscx.config")
	os.WriteFile(noScx, []byte(strings.Replace(frag, "CONFIG_SCHED_CLASS_EXT=y", "# CONFIG_SCHED_CLASS_EXT is not set", 1)), 0o644)
	noMMIO := filepath.Join(dir, "nommio.config")
	os.WriteFile(noMMIO, []byte(strings.Replace(frag, "CONFIG_VIRTIO_MMIO=y", "CONFIG_VIRTIO_MMIO=m", 1)), 0o644)
	configured := filepath.Join(dir, "configured")
	os.MkdirAll(configured, 0o755)
	os.WriteFile(filepath.Join(configured, ".config"), []byte(frag), 0o644)
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("hello\n"), 0o644)
	tests := []struct {
		args         []string
		code         int
		stdout, diag string
	}{
		{[]string{"check", good}, 0, "usable: this kernel has what ktstr needs", ""},
		{[]string{"check", noScx}, 1, "no CONFIG_SCHED_CLASS_EXT: only EEVDF baselines can run", ""},
		{[]string{"check", "--baseline", noScx}, 0, "usable", ""},
		{[]string{"check", "--baseline", noMMIO}, 1, "CONFIG_VIRTIO_MMIO=m (a module", ""},
		{[]string{"check", "--json", noScx}, 1, `"usable":false`, ""},
		{[]string{"check", configured}, 0, "config: " + filepath.Join(configured, ".config"), ""},
		{[]string{"check", junk}, 2, "", "not a bzImage, ELF vmlinux or kernel .config"},
		{[]string{"check", "/dev/zero"}, 2, "", "not a regular file"},
		{[]string{"check", filepath.Join(dir, "nope")}, 2, "", "does not exist"},
		{[]string{"check"}, 2, "", "give one KERNEL"},
		{[]string{"check", "--bogus", good}, 2, "", "flag provided but not defined"},
		{[]string{"resolve", "6.12"}, 1, "", "ktstr-kernel list"},
		{[]string{"resolve", "a", "b"}, 2, "", "at most one SPEC"},
		{[]string{"list"}, 0, "", ""},
		{[]string{"gc"}, 2, "", "--keep N and/or --max-size"},
		{[]string{"gc", "--max-size", "lots"}, 2, "", "--max-size"},
		{[]string{"gc", "--keep", "3"}, 0, "kept 0 kernels", ""},
		{[]string{"build", filepath.Join(dir, "nope")}, 2, "", "not a directory"},
		{[]string{"build", dir}, 1, "", "not a kernel source tree"},
		{[]string{"build", "-j", "-1", dir}, 2, "", "--jobs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, env, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.diag) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if strings.Contains(errOut, "goroutine") {
				t.Errorf("panic trace:\n%s", errOut)
			}
		})
	}
}

// TestBuildResolveCheck: build a fake tree through the CLI, then resolve
// it by version and check the cached kernel's config.
func TestBuildResolveCheck(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP: make not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "linux")
	if out, err := exec.Command("cp", "-r", "../../pkg/kernel/testdata/fake-linux", src).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	env := []string{"KTSTR_KERNEL_CACHE_DIR=" + filepath.Join(dir, "cache")}
	out, errOut, code := runCLI(t, env, "build", src)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	entry := strings.TrimSpace(out)
	if !strings.HasPrefix(filepath.Base(entry), "6.12.99-fake-") || strings.Count(out, "\n") != 1 {
		t.Fatalf("build printed %q", out)
	}
	out, _, code = runCLI(t, env, "resolve", "--all", "6.12")
	if code != 0 || !strings.Contains(out, "bzImage    "+filepath.Join(entry, "bzImage")) || !strings.Contains(out, "vmlinux    "+filepath.Join(entry, "vmlinux")) {
		t.Errorf("resolve --all: %d %q", code, out)
	}
	// check resolves a version to the entry's bzImage (a fake one here:
	// refused as such) and reads the entry's config directly.
	_, errOut, code = runCLI(t, env, "check", "6.12.99-fake")
	if code != 2 || !strings.Contains(errOut, filepath.Join(entry, "bzImage")+": not a bzImage") {
		t.Errorf("check by version: %d %s", code, errOut)
	}
	out, _, code = runCLI(t, env, "check", filepath.Join(entry, "config"))
	if code != 0 || !strings.Contains(out, "usable") {
		t.Errorf("check entry config: %d %s", code, out)
	}
	out, _, code = runCLI(t, env, "list")
	if code != 0 || !strings.Contains(out, "6.12.99-fake") {
		t.Errorf("list: %d %s", code, out)
	}
	// resolve with a source tree path finds the tree's files.
	out, _, code = runCLI(t, env, "resolve", src)
	if code != 0 || strings.TrimSpace(out) != filepath.Join(src, "arch/x86/boot/bzImage") {
		t.Errorf("resolve tree: %d %q", code, out)
	}
	out, _, code = runCLI(t, env, "gc", "--keep", "0")
	if code != 0 || !strings.Contains(out, "removed 6.12.99-fake-") {
		t.Errorf("gc: %d %s", code, out)
	}
}

// TestManPage: man/ktstr-kernel.1 documents every subcommand, flag,
// environment variable and exit status.
func TestManPage(t *testing.T) {
	b, err := os.ReadFile("../../man/ktstr-kernel.1")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	app := newApp()
	flags := app.Flags
	for _, c := range app.Commands {
		if !strings.Contains(man, ".SS "+c.Name) {
			t.Errorf("subcommand %s has no section", c.Name)
		}
		flags = append(flags, c.Flags...)
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) > 1 && !strings.Contains(man, `\-\-`+strings.ReplaceAll(n, "-", `\-`)) {
				t.Errorf("flag --%s is not in the man page", n)
			}
		}
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			for _, v := range ev.GetEnvVars() {
				if !strings.Contains(man, ".B "+v+"\n") {
					t.Errorf("environment variable %s is not in the man page", v)
				}
			}
		}
	}
	for _, c := range []int{0, exitUnusable, exitBad} {
		if !strings.Contains(man, fmt.Sprintf(".TP\n.B %d\n", c)) {
			t.Errorf("exit status %d is not in the man page", c)
		}
	}
}

// TestFullStdout: output that cannot be written is an error (exit 2),
// not a silent success.
func TestFullStdout(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("SKIP: no /dev/full: %v", err)
	}
	defer full.Close()
	dir := t.TempDir()
	for _, args := range [][]string{{"fragment"}, {"resolve", dir + "/"}, {"list"}} {
		os.MkdirAll(filepath.Join(dir, "arch/x86/boot"), 0o755)
		os.WriteFile(filepath.Join(dir, "arch/x86/boot/bzImage"), []byte("x"), 0o644)
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "KTSTR_KERNEL_CLI=1", "KTSTR_KERNEL_CACHE_DIR="+dir)
		cmd.Stdout = full
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if args[0] == "list" {
			// An empty cache prints nothing: nothing to fail.
			if err != nil {
				t.Errorf("list: %v %s", err, stderr.String())
			}
			continue
		}
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "write standard output") {
			t.Errorf("%v > /dev/full: %v %s", args, err, stderr.String())
		}
	}
}
