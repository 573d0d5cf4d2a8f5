package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/hostlock"
	"golang.org/x/sys/unix"
)

// These tests run the real binary in real processes: $KTSTR_BIN/ktstr-hostlock
// when the Makefile built it, else one built here.
var bin string

const helperEnv = "KTSTR_HOSTLOCK_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper())
	}
	tmp, err := os.MkdirTemp("", "hostlock-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(os.Getenv("KTSTR_BIN"), "ktstr-hostlock")
	if _, err := os.Stat(bin); os.Getenv("KTSTR_BIN") == "" || err != nil {
		bin = filepath.Join(tmp, "ktstr-hostlock")
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build ktstr-hostlock: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// helper is the command the stress test runs under each reservation: it
// records its interval (CLOCK_MONOTONIC, shared by all processes) and
// what it holds, as one line appended to $OUT.
func helper() int {
	now := func() int64 {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		return ts.Nano()
	}
	start := now()
	time.Sleep(time.Duration(1+rand.Intn(3)) * time.Millisecond)
	end := now()
	line := fmt.Sprintf("%s %d %d %s %s\n", os.Getenv("MODE"), start, end, os.Getenv(hostlock.EnvLLCs), os.Getenv(hostlock.EnvCPUs))
	f, err := os.OpenFile(os.Getenv("OUT"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 99
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		return 99
	}
	return 0
}

// env is one test's fake host and lock directory.
type env struct {
	t    *testing.T
	root string
	dir  string
}

func newEnv(t *testing.T, s fakesys.Spec) *env {
	t.Helper()
	e := &env{t: t, root: t.TempDir(), dir: filepath.Join(t.TempDir(), "locks")}
	if _, err := fakesys.Write(e.root, s); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(bin, append([]string{"--sysfs-root", e.root}, args...)...)
	c.Env = append(os.Environ(), hostlock.EnvLockDir+"="+e.dir)
	return c
}

// run runs ktstr-hostlock to completion.
func (e *env) run(args ...string) (rc int, stdout, stderr string) {
	e.t.Helper()
	c := e.cmd(args...)
	var o, er bytes.Buffer
	c.Stdout, c.Stderr = &o, &er
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), o.String(), er.String()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return 0, o.String(), er.String()
}

// hold starts `--hold args` and returns once it printed its reservation.
func (e *env) hold(args ...string) (*exec.Cmd, string) {
	e.t.Helper()
	c := e.cmd(append([]string{"--hold"}, args...)...)
	out, err := c.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		e.t.Fatalf("--hold %v printed nothing: %v", args, err)
	}
	return c, strings.TrimSpace(line)
}

// status reads --status --json.
func (e *env) status() hostlock.Status {
	e.t.Helper()
	rc, out, stderr := e.run("--status", "--json")
	var st hostlock.Status
	if rc != 0 || json.Unmarshal([]byte(out), &st) != nil {
		e.t.Fatalf("--status: rc %d %s %s", rc, out, stderr)
	}
	return st
}

func (e *env) waitUntil(what string, cond func(hostlock.Status) bool) {
	e.t.Helper()
	for i := 0; i < 1000; i++ {
		if cond(e.status()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("never saw %s", what)
}

func signalAndWait(t *testing.T, c *exec.Cmd, sig syscall.Signal) int {
	t.Helper()
	c.Process.Signal(sig)
	err := c.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

var single = fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1}
var numa2 = fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2}

func TestExclusiveVersusShared(t *testing.T) {
	e := newEnv(t, single)
	type check struct {
		args []string
		rc   int
	}
	for _, phase := range []struct {
		hold   []string
		checks []check
	}{
		{hold: []string{"--llcs", "1", "--shared"}, checks: []check{
			{[]string{"-n", "--llcs", "1", "--shared", "--", "true"}, 0},
			{[]string{"-n", "--cpus", "2", "--", "true"}, 0},
			{[]string{"-n", "--cpu-cap", "50%", "--", "true"}, 0},
			{[]string{"-n", "--llcs", "1", "--", "true"}, 75},
		}},
		{hold: []string{"--llcs", "1"}, checks: []check{
			{[]string{"-n", "--llcs", "1", "--shared", "--", "true"}, 75},
			{[]string{"-n", "--cpus", "1", "--", "true"}, 75},
			{[]string{"-n", "--llcs", "1", "--", "true"}, 75},
			{[]string{"--print"}, 75},
			{[]string{"--timeout", "0.2", "--", "true"}, 124},
		}},
		{hold: []string{"--cpus", "1"}, checks: []check{
			{[]string{"-n", "--cpus", "1", "--", "true"}, 0},
			{[]string{"-n", "--cpus", "2", "--", "true"}, 75},
			{[]string{"-n", "--llcs", "1", "--shared", "--", "true"}, 0},
			{[]string{"-n", "--llcs", "1", "--", "true"}, 75},
		}},
	} {
		h, _ := e.hold(phase.hold...)
		for _, c := range phase.checks {
			if rc, _, stderr := e.run(c.args...); rc != c.rc {
				t.Errorf("holding %v: %v exited %d, want %d (%s)", phase.hold, c.args, rc, c.rc, stderr)
			}
		}
		if rc := signalAndWait(t, h, syscall.SIGTERM); rc != 0 {
			t.Errorf("--hold %v exited %d on SIGTERM, want 0", phase.hold, rc)
		}
	}
	// Everything released: an exclusive LLC is free again.
	if rc, _, stderr := e.run("-n", "--", "true"); rc != 0 {
		t.Errorf("after all holders left: exit %d %s", rc, stderr)
	}
}

func TestNoWaitNamesHolder(t *testing.T) {
	e := newEnv(t, single)
	holder := e.cmd("--", "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	e.waitUntil("the holder's record", func(s hostlock.Status) bool {
		return s.LLCs[0].State == "exclusive" && s.LLCs[0].Holders[0].Command == "sleep 30"
	})
	rc, _, stderr := e.run("--no-wait", "--", "true")
	want := fmt.Sprintf("LLC 0 held exclusive by pid %d (sleep 30)", holder.Process.Pid)
	if rc != 75 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q; want 75 and one line naming %q", rc, stderr, want)
	}
	rc, out, _ := e.run("--status")
	if rc != 0 || !strings.Contains(out, fmt.Sprintf("pid %d (sleep 30)", holder.Process.Pid)) {
		t.Fatalf("--status: %d\n%s", rc, out)
	}
}

func TestSIGKILLedHolderFreesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		holder []string
	}{
		{"--hold", []string{"--hold"}},
		{"command in its process group", []string{"--", "sleep", "60"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, single)
			h := e.cmd(tc.holder...)
			h.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := h.Start(); err != nil {
				t.Fatal(err)
			}
			e.waitUntil("the holder", func(s hostlock.Status) bool { return s.LLCs[0].State == "exclusive" })
			waiter := e.cmd("--timeout", "60", "--", "true")
			var stderr bytes.Buffer
			waiter.Stderr = &stderr
			if err := waiter.Start(); err != nil {
				t.Fatal(err)
			}
			e.waitUntil("the waiter blocked on LLC 0", func(s hostlock.Status) bool { return s.LLCs[0].Waiting == 1 })
			killed := time.Now()
			syscall.Kill(-h.Process.Pid, syscall.SIGKILL)
			h.Wait()
			if err := waiter.Wait(); err != nil {
				t.Fatalf("waiter: %v %s", err, stderr.String())
			}
			t.Logf("waiter ran %v after the SIGKILL", time.Since(killed))
		})
	}
}

func TestExitStatuses(t *testing.T) {
	e := newEnv(t, single)
	os.MkdirAll(e.dir, 0o777)
	for _, tc := range []struct {
		args   []string
		rc     int
		stderr string
	}{
		{[]string{"--", "sh", "-c", "exit 7"}, 7, ""},
		// Options end at the command: its options stay its own.
		{[]string{"sh", "-c", "exit 5", "--status"}, 5, ""},
		{[]string{"-v", "--", "true"}, 2, "not defined: -v"},
		{[]string{"--", "sh", "-c", "kill -9 $$"}, 137, ""},
		{[]string{"--", "/nonexistent/cmd"}, 127, "nonexistent"},
		{[]string{"--", e.dir}, 126, ""},
		{[]string{"--llcs", "0", "--", "true"}, 2, "at least 1"},
		{[]string{"--llcs", "2", "--", "true"}, 3, "only 1"},
		{[]string{"--cpus", "3", "--", "true"}, 3, "only 2"},
		{[]string{}, 2, "no command"},
		{[]string{"--bogus"}, 2, "bogus"},
		{[]string{"--cpus", "1", "--llcs", "1", "--", "true"}, 2, "exclude"},
		{[]string{"--timeout", "soon", "--", "true"}, 2, "timeout"},
		{[]string{"--cpu-cap", "0%", "--", "true"}, 2, "percentage"},
		// A timeout that would round to 0 ("wait forever") or is not a
		// finite, sane number is a usage error, not a silent forever.
		{[]string{"--timeout", "1e-12", "--", "true"}, 2, "shorter than 1ms"},
		{[]string{"--timeout", "1ns", "--", "true"}, 2, "shorter than 1ms"},
		{[]string{"--timeout", "NaN", "--", "true"}, 2, "finite"},
		{[]string{"--timeout", "Inf", "--", "true"}, 2, "finite"},
		{[]string{"--timeout", "-inf", "--", "true"}, 2, "finite"},
		{[]string{"--timeout", "1e300", "--", "true"}, 2, "too long"},
		{[]string{"--timeout", "99999999h", "--", "true"}, 2, "out of range"},
		{[]string{"--timeout", "9000h", "--", "true"}, 2, "too long"},
		{[]string{"--timeout", "-1", "--", "true"}, 2, "negative"},
		{[]string{"--timeout", "0", "--", "true"}, 0, ""},
		{[]string{"--timeout", "0.5", "--", "true"}, 0, ""},
	} {
		rc, _, stderr := e.run(tc.args...)
		if rc != tc.rc || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: exit %d stderr %q; want %d containing %q", tc.args, rc, stderr, tc.rc, tc.stderr)
		}
	}
	// A symlink where a lock file belongs is refused, naming it.
	os.Remove(filepath.Join(e.dir, "llc-0.lock"))
	if err := os.Symlink("/etc/passwd", filepath.Join(e.dir, "llc-0.lock")); err != nil {
		t.Fatal(err)
	}
	if rc, _, stderr := e.run("--", "true"); rc != 125 || !strings.Contains(stderr, "llc-0.lock is a symbolic link") {
		t.Errorf("symlink lock file: exit %d %q", rc, stderr)
	}
}

// Output that cannot be written is a failure (exit 1), never a 0.
func TestOutputToFullDevice(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	e := newEnv(t, single)
	for _, args := range [][]string{{"--status"}, {"--status", "--json"}, {"--print"}, {"--print", "--json"}} {
		c := e.cmd(args...)
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		c.Stdout, c.Stderr = full, &stderr
		err = c.Run()
		full.Close()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "no space left") {
			t.Errorf("%v > /dev/full: %v, stderr %q; want exit 1 naming the write error", args, err, stderr.String())
		}
	}
}

// A lock directory that others may write but without the sticky bit lets
// them remove or replace lock files: refused (125) with what to do.
func TestLockDirWithoutStickyBit(t *testing.T) {
	e := newEnv(t, single)
	if err := os.Mkdir(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o777, 0o770} {
		if err := os.Chmod(e.dir, mode); err != nil {
			t.Fatal(err)
		}
		rc, _, stderr := e.run("--", "true")
		if rc != 125 || !strings.Contains(stderr, "sticky") || !strings.Contains(stderr, "chmod +t") {
			t.Errorf("mode %o: exit %d %q; want 125 naming the sticky bit", mode, rc, stderr)
		}
		if rc, _, stderr := e.run("--status"); rc != 125 {
			t.Errorf("mode %o --status: exit %d %q; want 125", mode, rc, stderr)
		}
	}
	for _, mode := range []os.FileMode{0o777 | os.ModeSticky, 0o755, 0o700} {
		if err := os.Chmod(e.dir, mode); err != nil {
			t.Fatal(err)
		}
		if rc, _, stderr := e.run("--", "true"); rc != 0 {
			t.Errorf("mode %v: exit %d %q; want 0", mode, rc, stderr)
		}
	}
}

func TestSignals(t *testing.T) {
	e := newEnv(t, single)
	// Forwarded to the command, whose status is ktstr-hostlock's.
	c := e.cmd("--", "sh", "-c", `trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done`)
	out, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
		t.Fatalf("child said %q", l)
	}
	if rc := signalAndWait(t, c, syscall.SIGTERM); rc != 42 {
		t.Errorf("SIGTERM forwarded: exit %d, want 42", rc)
	}
	// SIGINT while waiting: 128+2.
	h, _ := e.hold()
	w := e.cmd("--", "true")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitUntil("the waiter", func(s hostlock.Status) bool { return s.LLCs[0].Waiting == 1 })
	if rc := signalAndWait(t, w, syscall.SIGINT); rc != 130 {
		t.Errorf("SIGINT while waiting: exit %d, want 130", rc)
	}
	signalAndWait(t, h, syscall.SIGHUP)
}

func TestEnvironmentAndDescriptors(t *testing.T) {
	e := newEnv(t, numa2)
	// The lock files are open in the command; fd 3, given by the caller,
	// is left alone.
	show := `echo "$KTSTR_CPUS $KTSTR_LLCS $KTSTR_NUMA_NODES"; cat <&3; for f in /proc/self/fd/*; do readlink "$f"; done | grep -o '[a-z]*-[0-9]*[.]lock$' | sort -r`
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--llcs", "2"}, "0-3,8-11 0-1 0\nllc-1.lock\nllc-0.lock\n"},
		{[]string{"--llcs", "1", "--numa-node", "1"}, "4-5,12-13 2 1\nllc-2.lock\n"},
		{[]string{"--cpus", "2"}, "0,8 0 0\nllc-0.lock\nllc-0.lock\ncpu-8.lock\ncpu-0.lock\n"},
	} {
		given := filepath.Join(t.TempDir(), "given")
		os.WriteFile(given, []byte("fd 3 from the caller\n"), 0o644)
		f3, err := os.Open(given)
		if err != nil {
			t.Fatal(err)
		}
		c := e.cmd(append(tc.args, "--", "sh", "-c", show)...)
		c.ExtraFiles = []*os.File{f3}
		outb, err := c.CombinedOutput()
		f3.Close()
		rc, out := 0, string(outb)
		if err != nil {
			rc = -1
		}
		tc.want = strings.Replace(tc.want, "\n", "\nfd 3 from the caller\n", 1)
		if rc != 0 || out != tc.want {
			t.Errorf("%v: exit %d %q; want %q", tc.args, rc, out, tc.want)
		}
	}
	rc, out, _ := e.run("--print", "--llcs", "3")
	if rc != 0 || out != "KTSTR_CPUS=0-5,8-13\nKTSTR_LLCS=0-2\nKTSTR_NUMA_NODES=0-1\n" {
		t.Errorf("--print: %d %q", rc, out)
	}
	rc, out, _ = e.run("--print", "--json", "--cpus", "1", "--numa-node", "1")
	var p struct {
		CPUs string `json:"cpus"`
		IDs  []int  `json:"cpu_ids"`
	}
	if rc != 0 || json.Unmarshal([]byte(out), &p) != nil || p.CPUs != "4" || len(p.IDs) != 1 {
		t.Errorf("--print --json: %d %q", rc, out)
	}
}

func TestPinOnThisHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu/online"); err != nil {
		t.Skip("SKIP: no /sys/devices/system/cpu/online: cannot test --pin on the real topology")
	}
	dir := t.TempDir()
	c := exec.Command(bin, "--cpus", "1", "--pin", "--", "sh", "-c", `echo "$KTSTR_CPUS"; grep Cpus_allowed_list /proc/self/status`)
	c.Env = append(os.Environ(), hostlock.EnvLockDir+"="+dir)
	out, err := c.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || !strings.HasSuffix(lines[1], "\t"+lines[0]) {
		t.Fatalf("--pin: %v %q", err, out)
	}
}

// rec is one stress holder's line.
type rec struct {
	mode       string
	start, end int64
	llcs, cpus []int
}

// conflict says whether two holders that overlapped in time broke
// exclusivity: an exclusive LLC holder shares its LLCs with nobody, and
// CPU holders share no CPU. Shared and CPU holders may share LLCs.
func conflict(a, b rec) bool {
	if a.start >= b.end || b.start >= a.end {
		return false
	}
	meet := func(x, y []int) bool {
		for _, i := range x {
			for _, j := range y {
				if i == j {
					return true
				}
			}
		}
		return false
	}
	if (a.mode == "exclusive" || b.mode == "exclusive") && meet(a.llcs, b.llcs) {
		return true
	}
	return a.mode == "cpus" && b.mode == "cpus" && meet(a.cpus, b.cpus)
}

func TestConflictChecker(t *testing.T) {
	x := rec{mode: "exclusive", start: 0, end: 10, llcs: []int{1}, cpus: []int{2, 3}}
	for _, tc := range []struct {
		b    rec
		want bool
	}{
		{rec{mode: "exclusive", start: 5, end: 15, llcs: []int{1}}, true},
		{rec{mode: "shared", start: 9, end: 15, llcs: []int{0, 1}}, true},
		{rec{mode: "cpus", start: 0, end: 1, llcs: []int{1}, cpus: []int{3}}, true},
		{rec{mode: "exclusive", start: 10, end: 15, llcs: []int{1}}, false},
		{rec{mode: "exclusive", start: 5, end: 15, llcs: []int{2}}, false},
	} {
		if conflict(x, tc.b) != tc.want || conflict(tc.b, x) != tc.want {
			t.Errorf("conflict(%+v, %+v) != %v", x, tc.b, tc.want)
		}
	}
	c1 := rec{mode: "cpus", start: 0, end: 10, llcs: []int{0}, cpus: []int{1}}
	if !conflict(c1, rec{mode: "cpus", start: 1, end: 2, llcs: []int{0}, cpus: []int{1}}) ||
		conflict(c1, rec{mode: "cpus", start: 1, end: 2, llcs: []int{0}, cpus: []int{0}}) ||
		conflict(c1, rec{mode: "shared", start: 1, end: 2, llcs: []int{0}}) {
		t.Error("CPU holder rules")
	}
}

// TestStress: 32 concurrent requesters, 7 rounds each (224 reservations)
// of mixed kinds on a 4-LLC, 8-CPU fake host; every holder records its
// interval; no two may have broken exclusivity.
func TestStress(t *testing.T) {
	const requesters, rounds = 32, 7
	e := newEnv(t, fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 1})
	out := filepath.Join(t.TempDir(), "intervals")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		mode string
		args []string
	}{
		{"exclusive", []string{"--llcs", "1"}},
		{"exclusive", []string{"--llcs", "2"}},
		{"exclusive", []string{"--llcs", "1", "--numa-node", "1"}},
		{"shared", []string{"--llcs", "1", "--shared"}},
		{"shared", []string{"--cpu-cap", "3"}},
		{"cpus", []string{"--cpus", "1"}},
		{"cpus", []string{"--cpus", "3"}},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	fails := map[string]int{}
	started := time.Now()
	for r := 0; r < requesters; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				k := kinds[(r+i*5)%len(kinds)]
				c := e.cmd(append(k.args, "--timeout", "60", "--", self)...)
				c.Env = append(c.Env, helperEnv+"=1", "MODE="+k.mode, "OUT="+out)
				if b, err := c.CombinedOutput(); err != nil {
					mu.Lock()
					fails[fmt.Sprintf("%v: %v %s", k.args, err, b)]++
					mu.Unlock()
				}
			}
		}(r)
	}
	wg.Wait()
	for f, n := range fails {
		t.Errorf("%d× %s", n, f)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var recs []rec
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("bad record %q", line)
		}
		r := rec{mode: f[0]}
		r.start, _ = strconv.ParseInt(f[1], 10, 64)
		r.end, _ = strconv.ParseInt(f[2], 10, 64)
		r.llcs, _ = cpulist.Parse(f[3])
		r.cpus, _ = cpulist.Parse(f[4])
		recs = append(recs, r)
	}
	if len(recs) != requesters*rounds {
		t.Fatalf("%d records, want %d", len(recs), requesters*rounds)
	}
	overlaps := 0
	for i := range recs {
		for j := i + 1; j < len(recs); j++ {
			a, b := recs[i], recs[j]
			if a.start < b.end && b.start < a.end {
				overlaps++
			}
			if conflict(a, b) {
				t.Errorf("overlap: %+v and %+v", a, b)
			}
		}
	}
	t.Logf("%d reservations in %v, %d pairs ran concurrently without conflict", len(recs), time.Since(started).Round(time.Millisecond), overlaps)
	if overlaps == 0 {
		t.Error("no two holders ever ran at once: the test exercised no concurrency")
	}
}

// BenchmarkVsFlock times, alternating in one loop so both see the same
// machine load, `ktstr-hostlock -- true` (read the topology, queue,
// acquire one LLC exclusively, record, exec true, wait, release) against
// util-linux `flock FILE true`, both on a tmpfs lock directory when
// /dev/shm exists. It reports the median wall and CPU (user+sys of the
// process and its child) times of each and their ratios.
func BenchmarkVsFlock(b *testing.B) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		b.Skip("SKIP: util-linux flock(1) is not installed: no baseline to compare with")
	}
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "hostlock-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	env := append(os.Environ(), hostlock.EnvLockDir+"="+dir)
	type sample struct{ wall, cpu time.Duration }
	run := func(c *exec.Cmd) sample {
		t := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v %s", c.Args, err, out)
		}
		w := time.Since(t)
		return sample{w, c.ProcessState.UserTime() + c.ProcessState.SystemTime()}
	}
	var hl, fl []sample
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := exec.Command(bin, "--", "true")
		c.Env = env
		hl = append(hl, run(c))
		fl = append(fl, run(exec.Command(flock, filepath.Join(dir, "flock.lock"), "true")))
	}
	b.StopTimer()
	med := func(s []sample, cpu bool) float64 {
		v := make([]float64, len(s))
		for i, x := range s {
			v[i] = float64(x.wall)
			if cpu {
				v[i] = float64(x.cpu)
			}
		}
		sort.Float64s(v)
		return v[len(v)/2] / 1e6
	}
	b.ReportMetric(med(hl, false), "hostlock-ms")
	b.ReportMetric(med(fl, false), "flock-ms")
	b.ReportMetric(med(hl, false)/med(fl, false), "wall-ratio")
	b.ReportMetric(med(hl, true), "hostlock-cpu-ms")
	b.ReportMetric(med(fl, true), "flock-cpu-ms")
	b.ReportMetric(med(hl, true)/med(fl, true), "cpu-ratio")
}

// TestManPage: man/ktstr-hostlock.1 documents every flag, environment
// variable and exit status of ours.
func TestManPage(t *testing.T) {
	b, err := os.ReadFile("../../man/ktstr-hostlock.1")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	for _, f := range app().Flags {
		for _, n := range f.Names() {
			if len(n) > 1 && !strings.Contains(man, `\-\-`+strings.ReplaceAll(n, "-", `\-`)) {
				t.Errorf("flag --%s is not in the man page", n)
			}
		}
	}
	for _, v := range []string{hostlock.EnvLockDir, hostlock.EnvCPUs, hostlock.EnvLLCs, hostlock.EnvNodes, "XDG_RUNTIME_DIR"} {
		if !strings.Contains(man, ".B "+v) && !strings.Contains(man, ".BR "+v) {
			t.Errorf("environment variable %s is not in the man page", v)
		}
	}
	for _, c := range []int{hostlock.ExitUsage, hostlock.ExitUnsatisfiable, hostlock.ExitBusy, hostlock.ExitTimeout,
		hostlock.ExitLockError, hostlock.ExitCannotExec, hostlock.ExitNotFound} {
		if !strings.Contains(man, fmt.Sprintf(".TP\n.B %d\n", c)) {
			t.Errorf("exit status %d is not in the man page", c)
		}
	}
}
