package main_test

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/ktstr-go/ktstr/pkg/scenario"
)

var tool string // the built ktstr-mkinitramfs

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mkinitramfs-test")
	if err != nil {
		panic(err)
	}
	tool = filepath.Join(dir, "ktstr-mkinitramfs")
	cmd := exec.Command("go", "build", "-o", tool, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func staticInit(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("SKIP LOUDLY: busybox-static (/bin/busybox) not installed: this test did not run")
	}
	return "/bin/busybox"
}

type result struct {
	stdout, stderr string
	code           int
}

func runTool(t *testing.T, cache string, args ...string) result {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), "KTSTR_CACHE_DIR="+cache, "KTSTR_INIT=")
	r := testenv.Run(t, cmd)
	return result{r.Stdout, r.Stderr, r.Code}
}

// bigFile writes n pseudo-random (barely compressible) bytes.
func bigFile(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big.bin")
	b := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func onePath(t *testing.T, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("stdout is not exactly one line: %q", r.stdout)
	}
	p := strings.TrimSuffix(r.stdout, "\n")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("printed path: %v", err)
	}
	return p
}

func TestConcurrentBuildersBuildOnce(t *testing.T) {
	init := staticInit(t)
	big := bigFile(t, 8<<20)
	cache := t.TempDir()
	const n = 8
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i] = runTool(t, cache, "--verbose", "--init", init, "--include", big, "--scheduler", init, "--", "-x")
		}(i)
	}
	close(start)
	wg.Wait()
	var builds, hashes int
	var first []byte
	for i, r := range results {
		p := onePath(t, r)
		builds += strings.Count(r.stderr, "built base ")
		hashes += strings.Count(r.stderr, "indexed base ")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("process %d got different bytes", i)
		}
	}
	if builds != 1 || hashes != 1 {
		t.Fatalf("%d processes: %d base builds and %d hash passes, want 1 and 1", n, builds, hashes)
	}
}

func TestKilledBuilderLeavesCacheUsable(t *testing.T) {
	init := staticInit(t)
	big := bigFile(t, 48<<20)
	cache := t.TempDir()
	cmd := exec.Command(tool, "--init", init, "--include", big, "--compress", "gzip")
	cmd.Env = append(os.Environ(), "KTSTR_CACHE_DIR="+cache)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it is writing a blob (a non-empty file in tmp/).
	deadline := time.Now().Add(20 * time.Second)
	killed := false
	for time.Now().Before(deadline) && !killed {
		ents, _ := os.ReadDir(filepath.Join(cache, "tmp"))
		for _, e := range ents {
			if info, err := e.Info(); err == nil && info.Size() > 0 {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		time.Sleep(time.Millisecond)
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("never saw the builder writing (it exited: %v)", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "blobs")); len(ents) != 0 {
		t.Logf("after the kill blobs/ holds %d files (must not be used without a sidecar)", len(ents))
	}
	r := runTool(t, cache, "--verbose", "--init", init, "--include", big, "--compress", "gzip")
	p := onePath(t, r)
	if !strings.Contains(r.stderr, "built base") {
		t.Fatalf("the rerun did not build the base part: %s", r.stderr)
	}
	fresh := onePath(t, runTool(t, t.TempDir(), "--init", init, "--include", big, "--compress", "gzip"))
	a, _ := os.ReadFile(p)
	b, _ := os.ReadFile(fresh)
	if !bytes.Equal(a, b) {
		t.Fatal("blob built after the kill differs from a fresh build")
	}
}

func TestCorruptBlobIsRebuilt(t *testing.T) {
	init := staticInit(t)
	cache := t.TempDir()
	args := []string{"--verbose", "--init", init, "--compress", "none"}
	p := onePath(t, runTool(t, cache, args...))
	good, _ := os.ReadFile(p)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(p, bad, 0o644); err != nil { // same size, new mtime
		t.Fatal(err)
	}
	r := runTool(t, cache, args...)
	if p2 := onePath(t, r); p2 != p || !strings.Contains(r.stderr, "built full") {
		t.Fatalf("corrupt blob not rebuilt: %s", r.stderr)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, good) {
		t.Fatal("rebuilt blob differs from the original")
	}
	// A blob without its sidecar is not a hit either.
	os.Remove(p + ".meta")
	if r := runTool(t, cache, args...); !strings.Contains(r.stderr, "built full") {
		t.Fatalf("blob without sidecar was used: %s", r.stderr)
	}
	// --verify with an intact blob: a hit.
	if r := runTool(t, cache, append(args, "--verify")...); !strings.Contains(r.stderr, "hit full") {
		t.Fatalf("--verify on an intact blob: %s", r.stderr)
	}
}

func TestFlagsAndExitCodes(t *testing.T) {
	init := staticInit(t)
	cache := t.TempDir()
	dir := t.TempDir()
	scen := filepath.Join(dir, "s.json")
	os.WriteFile(scen, []byte(`{"steps":[{}]}`+"\n"), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"steps":[]}`), 0o644)

	p := onePath(t, runTool(t, cache, "--init", init, "--scenario", scen))
	key := runTool(t, cache, "--print-key", "--init", init, "--scenario", scen)
	if key.code != 0 || !strings.HasPrefix(filepath.Base(p), strings.TrimSpace(key.stdout)+".") {
		t.Fatalf("--print-key %q does not name %s", key.stdout, p)
	}
	out := filepath.Join(dir, "out.cpio.zst")
	if got := onePath(t, runTool(t, cache, "--init", init, "--scenario", scen, "-o", out)); got != out {
		t.Fatalf("--output printed %s", got)
	}
	a, _ := os.ReadFile(p)
	b, _ := os.ReadFile(out)
	nc := onePath(t, runTool(t, filepath.Join(dir, "unused-cache"), "--no-cache", "--init", init, "--scenario", scen))
	defer os.Remove(nc)
	c, _ := os.ReadFile(nc)
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Fatal("--output or --no-cache bytes differ from the cached blob")
	}
	if _, err := os.Stat(filepath.Join(dir, "unused-cache")); err == nil {
		t.Fatal("--no-cache created the cache directory")
	}
	parts := runTool(t, cache, "--parts", "--init", init, "--scenario", scen)
	lines := strings.Split(strings.TrimSpace(parts.stdout), "\n")
	if parts.code != 0 || len(lines) != 2 {
		t.Fatalf("--parts: %q %s", parts.stdout, parts.stderr)
	}
	pa, _ := os.ReadFile(lines[0])
	pb, _ := os.ReadFile(lines[1])
	if !bytes.Equal(append(pa, pb...), a) {
		t.Fatal("the parts do not concatenate to the blob")
	}
	list := runTool(t, cache, "--list")
	if list.code != 0 || !strings.Contains(list.stdout, p) || !strings.Contains(list.stdout, "base") {
		t.Fatalf("--list: %q", list.stdout)
	}
	gc := runTool(t, cache, "--gc", "--keep", "1")
	if gc.code != 0 || !strings.Contains(gc.stderr, "removed 2 blobs") {
		t.Fatalf("--gc: %d %q", gc.code, gc.stderr)
	}
	if list := runTool(t, cache, "--list"); strings.Count(list.stdout, "\n") != 2 {
		t.Fatalf("after --gc --keep 1: %q", list.stdout)
	}
	if gc := runTool(t, cache, "--gc", "--max-size", "0"); gc.code != 0 || !strings.Contains(gc.stderr, "kept 0") {
		t.Fatalf("--gc --max-size 0: %q", gc.stderr)
	}
	for _, sub := range []string{"blobs", "index", "locks"} {
		if ents, _ := os.ReadDir(filepath.Join(cache, sub)); len(ents) != 0 {
			t.Errorf("after --gc --max-size 0, %s/ still holds %d files", sub, len(ents))
		}
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--init", filepath.Join(dir, "nope")}, 3, "no such file"},
		{[]string{}, 3, "pass --init"},
		{[]string{"--init", init, "--scenario", "no-such-scenario"}, 3, "not in the catalog (have: affinity_change"},
		{[]string{"--init", init, "--scenario", filepath.Join(dir, "no-such.json")}, 3, "no such file"},
		{[]string{"--init", init, "--scenario", bad}, 3, "scenario has no steps"},
		{[]string{"--init", init, "--compress", "bz9"}, 2, "unknown compression"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		// blob=$(ktstr-mkinitramfs -v ...) must not capture a version.
		{[]string{"-v", "--init", init}, 2, "not defined: -v"},
		{[]string{"--init", init, "--", "-v"}, 2, "without --scheduler"},
		{[]string{"--gc"}, 2, "--keep"},
		{[]string{"--init", init, "--keep", "3"}, 2, "only go with --gc"},
		{[]string{"--init", init, "--include", "x:relative"}, 2, "must be absolute"},
	} {
		r := runTool(t, cache, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || r.stdout != "" {
			t.Errorf("%v: exit %d stderr %q stdout %q; want exit %d and one line with %q", c.args, r.code, r.stderr, r.stdout, c.code, c.msg)
		}
	}
}

func TestInitNextToExecutable(t *testing.T) {
	init := staticInit(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "ktstr-mkinitramfs")
	b, _ := os.ReadFile(tool)
	os.WriteFile(exe, b, 0o755)
	os.Symlink(init, filepath.Join(dir, "ktstr-init"))
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "KTSTR_CACHE_DIR="+t.TempDir(), "KTSTR_INIT=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ktstr-init next to the executable not used: %v %s", err, out)
	}
}

// TestScenarioCatalog: --scenario NAME packs the catalog's scenario and
// records its name in the run configuration (read back with cpio(1)).
func TestScenarioCatalog(t *testing.T) {
	init := staticInit(t)
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("SKIP LOUDLY: cpio (apt-get install cpio) is missing: this test did not run")
	}
	cache := t.TempDir()
	// The run part (second line of --parts) holds run.json and the scenario.
	r := runTool(t, cache, "--parts", "--compress", "none", "--init", init, "--scenario", "two-cgroups-disjoint")
	parts := strings.Fields(r.stdout)
	if r.code != 0 || len(parts) != 2 {
		t.Fatalf("--parts: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	blob := parts[1]
	extract := func(name string) []byte {
		f, err := os.Open(blob)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command("cpio", "-i", "--quiet", "--to-stdout", name)
		cmd.Stdin = f
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio -i %s: %v", name, err)
		}
		return out
	}
	want, err := scenario.CatalogBytes("two-cgroups-disjoint")
	if err != nil {
		t.Fatal(err)
	}
	if got := extract("etc/ktstr/scenario.json"); !bytes.Equal(got, want) {
		t.Fatalf("packed scenario differs from the catalog's:\n%s", got)
	}
	cfg, err := runconfig.Unmarshal(extract("etc/ktstr/run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scenario != runconfig.ScenarioPath || cfg.ScenarioName != "two-cgroups-disjoint" {
		t.Fatalf("run configuration %+v", cfg)
	}
}

// -o naming something other than a regular file is refused before any
// work, and the thing is left exactly as it was (as root, -o /dev/null
// used to replace the device node with a regular file).
func TestOutputRefusesSpecialFiles(t *testing.T) {
	init := staticInit(t)
	cache := t.TempDir()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "subdir")
	os.Mkdir(sub, 0o755)
	linkToFifo := filepath.Join(dir, "link-to-fifo")
	os.Symlink(fifo, linkToFifo)
	for _, tc := range []struct{ path, kind string }{
		{"/dev/null", "character device"},
		{fifo, "FIFO"},
		{linkToFifo, "FIFO"},
		{sub, "directory"},
		{filepath.Join(dir, "no-such-dir", "out"), "no such file"},
	} {
		before, _ := os.Lstat(tc.path)
		for _, extra := range [][]string{nil, {"--no-cache"}} {
			args := append([]string{"--init", init, "-o", tc.path}, extra...)
			r := runTool(t, cache, args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.kind) || r.stdout != "" {
				t.Errorf("%v: exit %d stderr %q stdout %q; want exit 2 naming a %s", args, r.code, r.stderr, r.stdout, tc.kind)
			}
			after, _ := os.Lstat(tc.path)
			if before != nil && (after == nil || after.Mode() != before.Mode() || !os.SameFile(before, after)) {
				t.Errorf("%v: %s was replaced", args, tc.path)
			}
		}
	}
	// A symbolic link to a regular file: the file it names is replaced,
	// the link stays.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if r := runTool(t, cache, "--init", init, "-o", link); r.code != 0 {
		t.Fatalf("-o symlink to a file: %d %s", r.code, r.stderr)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced")
	}
	if b, _ := os.ReadFile(target); len(b) < 512 {
		t.Errorf("the link's target was not written (%d bytes)", len(b))
	}
}

// --no-cache -o FILE writes atomically: while it builds, FILE keeps its
// old bytes; a build that fails leaves FILE untouched; the temporary file
// is gone either way.
func TestUncachedOutputIsAtomic(t *testing.T) {
	init := staticInit(t)
	big := bigFile(t, 48<<20)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.cpio")
	old := []byte("the old blob")
	os.WriteFile(out, old, 0o644)
	r := runTool(t, t.TempDir(), "--no-cache", "-o", out, "--init", filepath.Join(dir, "missing"))
	if r.code != 3 {
		t.Fatalf("failing build: exit %d %s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, old) {
		t.Fatalf("a failed --no-cache build altered the old output: %v %q", err, b)
	}
	cmd := exec.Command(tool, "--no-cache", "-o", out, "--init", init, "--include", big)
	cmd.Env = append(os.Environ(), "KTSTR_CACHE_DIR="+t.TempDir())
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sizes := map[int64]bool{}
	var err error
	for running := true; running; {
		select {
		case err = <-done:
			running = false
		default:
			if st, e := os.Stat(out); e == nil {
				sizes[st.Size()] = true
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(out)
	for s := range sizes {
		if s != int64(len(old)) && s != st.Size() {
			t.Errorf("saw %s with %d bytes while building (old %d, final %d): not atomic", out, s, len(old), st.Size())
		}
	}
	if strings.TrimSpace(stdout.String()) != out || st.Size() < 48<<20 {
		t.Fatalf("stdout %q, size %d", stdout.String(), st.Size())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%s holds %d entries after the build, want only the output", dir, len(ents))
	}
}

// killMidWrite starts the tool and SIGKILLs it once a file whose name
// contains the temporary marker in dir has data.
func killMidWrite(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	killed := false
	for time.Now().Before(deadline) && !killed {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if info, err := e.Info(); err == nil && info.Size() > 0 && strings.Contains(e.Name(), ".ktstr-tmp.") {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		time.Sleep(time.Millisecond)
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("never saw the builder writing in %s (it exited: %v)", dir, err)
	}
}

func tempFiles(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".ktstr-tmp.") {
			out = append(out, e.Name())
		}
	}
	return out
}

// A SIGKILL mid-build leaves a temporary file; an immediate --gc, or the
// next build, removes it (its owner is dead and its flock gone).
func TestKilledBuilderTempIsSwept(t *testing.T) {
	init := staticInit(t)
	big := bigFile(t, 48<<20)
	cache := t.TempDir()
	env := []string{"KTSTR_CACHE_DIR=" + cache}
	args := []string{"--init", init, "--include", big, "--compress", "gzip"}
	killMidWrite(t, filepath.Join(cache, "tmp"), env, args...)
	if left := tempFiles(filepath.Join(cache, "tmp")); len(left) == 0 {
		t.Fatal("the killed builder left no temporary file: the test proves nothing")
	}
	if r := runTool(t, cache, "--gc", "--keep", "100"); r.code != 0 {
		t.Fatalf("--gc: %d %s", r.code, r.stderr)
	}
	if left := tempFiles(filepath.Join(cache, "tmp")); len(left) != 0 {
		t.Fatalf("an immediate --gc left %v", left)
	}
	killMidWrite(t, filepath.Join(cache, "tmp"), env, args...)
	onePath(t, runTool(t, cache, args...))
	if left := tempFiles(filepath.Join(cache, "tmp")); len(left) != 0 {
		t.Fatalf("the next build left %v", left)
	}

	// --no-cache -o FILE: the killed write's temporary file sits next to
	// FILE and goes with the next write to FILE.
	dir := t.TempDir()
	out := filepath.Join(dir, "out.cpio")
	killMidWrite(t, dir, env, append([]string{"--no-cache", "-o", out}, args...)...)
	if len(tempFiles(dir)) == 0 {
		t.Fatal("the killed --no-cache build left no temporary file: the test proves nothing")
	}
	onePath(t, runTool(t, cache, append([]string{"--no-cache", "-o", out, "--compress", "none"}, args[:4]...)...))
	if left := tempFiles(dir); len(left) != 0 {
		t.Fatalf("the next --no-cache -o build left %v", left)
	}

	// --no-cache without -o writes into $TMPDIR: the same there.
	tmp := t.TempDir()
	killMidWrite(t, tmp, append(env, "TMPDIR="+tmp), append([]string{"--no-cache"}, args...)...)
	if len(tempFiles(tmp)) == 0 {
		t.Fatal("the killed --no-cache build left no temporary file in $TMPDIR: the test proves nothing")
	}
	cmd := exec.Command(tool, "--no-cache", "--compress", "none", "--init", init)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), tmp+"/ktstr-initramfs-") {
		t.Fatalf("--no-cache into $TMPDIR: %v %q", err, out)
	}
	if left := tempFiles(tmp); len(left) != 0 {
		t.Fatalf("the next --no-cache build left %v in $TMPDIR", left)
	}
}

// A temporary file being written is never swept: --gc and other builders
// running during a build leave it alone, and the build succeeds.
func TestSweepSparesLiveBuilder(t *testing.T) {
	init := staticInit(t)
	big := bigFile(t, 48<<20)
	cache := t.TempDir()
	cmd := exec.Command(tool, "--init", init, "--include", big, "--compress", "gzip")
	cmd.Env = append(os.Environ(), "KTSTR_CACHE_DIR="+cache)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(tempFiles(filepath.Join(cache, "tmp"))) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	sweeps := 0
	var err error
	for done := false; !done; {
		if r := runTool(t, cache, "--gc", "--keep", "100"); r.code != 0 {
			t.Fatalf("--gc: %d %s", r.code, r.stderr)
		}
		runTool(t, cache, "--print-key", "--init", init) // opens the cache: sweeps
		sweeps++
		select {
		case err = <-waited:
			done = true
		default:
		}
	}
	if err != nil {
		t.Fatalf("builder failed while others swept (%d sweeps): %v %s", sweeps, err, stderr.String())
	}
	t.Logf("%d sweeps ran during the build", sweeps)
	if _, err := os.Stat(strings.TrimSpace(stdout.String())); err != nil {
		t.Fatal(err)
	}
}

// --busybox runs the binary to list its applets: a binary that prints
// without end is stopped at 1 MiB, a script is refused unrun; both exit 3.
func TestBusyboxListingIsBounded(t *testing.T) {
	init := staticInit(t)
	// busybox under the name "yes" runs its yes applet: `yes --list-full`
	// prints "--list-full" lines without end.
	yes := filepath.Join(t.TempDir(), "yes")
	b, err := os.ReadFile(init)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yes, b, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "bb.sh")
	marker := filepath.Join(t.TempDir(), "ran")
	os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755)
	for _, tc := range []struct{ bb, msg string }{
		{yes, "more than 1048576 bytes"},
		{script, "not an ELF binary"},
	} {
		start := time.Now()
		r := runTool(t, t.TempDir(), "--init", init, "--busybox", tc.bb)
		if r.code != 3 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("--busybox %s: exit %d %q; want 3 with %q", tc.bb, r.code, r.stderr, tc.msg)
		}
		t.Logf("--busybox %s: %v", tc.bb, time.Since(start))
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the script given as --busybox was run")
	}
	// The real busybox still works.
	onePath(t, runTool(t, t.TempDir(), "--init", init, "--busybox", init))
}
