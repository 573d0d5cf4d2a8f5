package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/hostlock"
	"github.com/ktstr-go/ktstr/pkg/pipeline"
)

// reserveRig is a real ktstr-run and a real ktstr-hostlock, built from
// this tree into one directory beside fake stand-ins for the other tools
// (ktstr-run finds its tools beside its own executable), a fake sysfs
// host and a private lock directory. The fake ktstr-boot writes the
// reservation it was started under ($KTSTR_LLCS $KTSTR_CPUS) to
// $FAKE_DIR/$FAKE_TAG.held and then blocks reading the FIFO
// $FAKE_DIR/$FAKE_TAG.go, so a test decides when each run ends.
type reserveRig struct {
	t                        *testing.T
	bin, sysfs, locks, state string
}

func newReserveRig(t *testing.T, host fakesys.Spec) *reserveRig {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("SKIP: no sh for the fake tools")
	}
	r := &reserveRig{t: t, bin: t.TempDir(), sysfs: t.TempDir(), locks: filepath.Join(t.TempDir(), "locks"), state: t.TempDir()}
	for name, pkg := range map[string]string{"ktstr-run": ".", pipeline.Hostlock: "../ktstr-hostlock"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(r.bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	for name, body := range map[string]string{
		pipeline.Mkinitramfs: `echo "$FAKE_DIR/blob"`,
		pipeline.Boot: `printf '%s %s\n' "$KTSTR_LLCS" "$KTSTR_CPUS" >"$FAKE_DIR/$FAKE_TAG.tmp" && mv "$FAKE_DIR/$FAKE_TAG.tmp" "$FAKE_DIR/$FAKE_TAG.held"
read _ <"$FAKE_DIR/$FAKE_TAG.go"
printf frame-bytes`,
		pipeline.Monitor: `cat`,
		pipeline.Decode:  `cat >/dev/null; echo "verdict: PASS"`,
	} {
		if err := os.WriteFile(filepath.Join(r.bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fakesys.Write(r.sysfs, host); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *reserveRig) env(tag string) []string {
	var env []string
	for _, e := range os.Environ() {
		// Not inside a reservation of the caller's.
		if !strings.HasPrefix(e, hostlock.EnvCPUs+"=") && !strings.HasPrefix(e, hostlock.EnvLLCs+"=") {
			env = append(env, e)
		}
	}
	return append(env, hostlock.EnvLockDir+"="+r.locks, "FAKE_DIR="+r.state, "FAKE_TAG="+tag)
}

// runProc is one ktstr-run tagged tag, started; its FIFO exists before it.
type runProc struct {
	tag            string
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func (r *reserveRig) start(tag string, args ...string) *runProc {
	r.t.Helper()
	if err := syscall.Mkfifo(filepath.Join(r.state, tag+".go"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	k := filepath.Join(r.state, "bzImage")
	os.WriteFile(k, []byte("k"), 0o644)
	x := &runProc{tag: tag}
	x.cmd = exec.Command(filepath.Join(r.bin, "ktstr-run"), append([]string{"--kernel", k, "--sysfs-root", r.sysfs}, args...)...)
	x.cmd.Env = r.env(tag)
	x.cmd.Stdout, x.cmd.Stderr = &x.stdout, &x.stderr
	// Its own process group, so that a failing test ends the whole
	// pipeline (the fake ktstr-boot blocked on its FIFO included); and a
	// bound on Wait after that, as orphans could keep its pipes open.
	x.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.cmd.WaitDelay = 5 * time.Second
	if err := x.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { x.kill() })
	return x
}

// kill ends x's process group and reaps x.
func (x *runProc) kill() {
	if x.cmd.ProcessState == nil {
		syscall.Kill(-x.cmd.Process.Pid, syscall.SIGKILL)
		x.cmd.Wait()
	}
}

// waitFor polls cond until it holds (a condition, not a duration: the
// deadline only turns a hang into a failure); false when it never did.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// held waits until x's fake ktstr-boot runs and returns its LLCs and CPUs.
func (r *reserveRig) held(x *runProc) (llcs, cpus []int) {
	r.t.Helper()
	p := filepath.Join(r.state, x.tag+".held")
	if !waitFor(func() bool { _, err := os.Stat(p); return err == nil }) {
		x.kill()
		r.t.Fatalf("%s never held its reservation: %s", x.tag, x.stderr.String())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		r.t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		r.t.Fatalf("%s held %q", x.tag, b)
	}
	if llcs, err = cpulist.Parse(f[0]); err == nil {
		cpus, err = cpulist.Parse(f[1])
	}
	if err != nil {
		r.t.Fatalf("%s held %q: %v", x.tag, b, err)
	}
	return llcs, cpus
}

// finish lets x's ktstr-boot end and checks that the run passed.
func (r *reserveRig) finish(x *runProc) {
	r.t.Helper()
	f, err := os.OpenFile(filepath.Join(r.state, x.tag+".go"), os.O_WRONLY, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	f.WriteString("go\n")
	f.Close()
	if err := x.cmd.Wait(); err != nil || !strings.Contains(x.stdout.String(), "verdict: PASS") {
		r.t.Fatalf("%s: %v, stdout %q, stderr %s", x.tag, err, x.stdout.String(), x.stderr.String())
	}
}

func (r *reserveRig) hostlock(args ...string) (int, string) {
	c := exec.Command(filepath.Join(r.bin, pipeline.Hostlock), append([]string{"--sysfs-root", r.sysfs}, args...)...)
	c.Env = r.env("")
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		r.t.Fatal(err)
	}
	return 0, string(out)
}

func disjoint(a, b []int) bool {
	in := map[int]bool{}
	for _, x := range a {
		in[x] = true
	}
	for _, x := range b {
		if in[x] {
			return false
		}
	}
	return true
}

// TestReserveLLCsRealProcesses: concurrent ktstr-run --reserve llcs on a
// fake host of 4 LLCs of 2 CPUs, with guests of 3 vCPUs (2 LLCs each).
// Two runs get disjoint whole LLCs; then nothing is left: neither an LLC
// nor a single CPU can be had without waiting (ktstr-hostlock --no-wait
// exits 75), and a third run queues until the first ends, then gets the
// first one's LLCs. A guest bigger than the host is refused at once.
func TestReserveLLCsRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds ktstr-run and ktstr-hostlock (-short)")
	}
	r := newReserveRig(t, fakesys.Spec{Nodes: 1, LLCs: 4, Cores: 2, Threads: 1})
	guest := []string{"--topology", "1n1l3c1t", "--reserve", "llcs"}

	a := r.start("a", guest...)
	aLLCs, aCPUs := r.held(a)
	b := r.start("b", guest...)
	bLLCs, bCPUs := r.held(b)
	if len(aLLCs) != 2 || len(bLLCs) != 2 || !disjoint(aLLCs, bLLCs) || !disjoint(aCPUs, bCPUs) || len(aCPUs) != 4 || len(bCPUs) != 4 {
		t.Fatalf("two runs: a holds LLCs %v CPUs %v, b LLCs %v CPUs %v; want 2 whole LLCs each, disjoint", aLLCs, aCPUs, bLLCs, bCPUs)
	}
	if code, out := r.hostlock("--no-wait", "--llcs", "1", "--", "true"); code != hostlock.ExitBusy {
		t.Errorf("--llcs 1 --no-wait beside two runs: exit %d, want %d: %s", code, hostlock.ExitBusy, out)
	}
	// Exclusive LLCs also keep out a --reserve cpus run's single CPUs.
	if code, out := r.hostlock("--no-wait", "--cpus", "1", "--", "true"); code != hostlock.ExitBusy {
		t.Errorf("--cpus 1 --no-wait beside two runs: exit %d, want %d: %s", code, hostlock.ExitBusy, out)
	}

	c := r.start("c", guest...)
	queued := waitFor(func() bool {
		code, out := r.hostlock("--status", "--json")
		var st hostlock.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("--status: exit %d: %s", code, out)
		}
		return st.Deciding != nil || st.Queued > 0
	})
	if !queued {
		t.Fatal("c never queued in ktstr-hostlock")
	}
	if _, err := os.Stat(filepath.Join(r.state, "c.held")); err == nil {
		t.Fatal("c runs while a and b hold every LLC")
	}
	r.finish(a)
	cLLCs, _ := r.held(c)
	if cpulist.Format(cLLCs) != cpulist.Format(aLLCs) {
		t.Errorf("c got LLCs %v after a (%v) ended, b holding %v", cLLCs, aLLCs, bLLCs)
	}
	r.finish(b)
	r.finish(c)

	// Too big for the host: exit 2 at once with what the host has, not a wait.
	k := filepath.Join(r.state, "bzImage")
	big := exec.Command(filepath.Join(r.bin, "ktstr-run"), "--kernel", k, "--sysfs-root", r.sysfs, "--topology", "1n1l9c1t", "--reserve", "llcs")
	big.Env = r.env("big")
	out, err := big.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != pipeline.ExitUsage || !strings.Contains(string(out), "its 4 LLC(s) hold 8 CPU(s)") {
		t.Errorf("9 vCPUs on 8 CPUs: %v: %s", err, out)
	}
}
