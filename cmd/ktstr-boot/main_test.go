package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/internal/testenv"
)

// bootBin builds ktstr-boot once per test binary run (internal/testenv):
// always from this source, never $KTSTR_BIN's.
func bootBin(t *testing.T) string {
	t.Helper()
	return testenv.Build(t, "ktstr-boot")
}

func TestMain(m *testing.M) { testenv.Main(m) }

// fixtureKernel returns $KTSTR_KERNEL's bytes or skips loudly.
func fixtureKernel(t *testing.T) (string, []byte) {
	t.Helper()
	p := testenv.Need(t, testenv.KernelVar, "ktstr-boot's input validation against a real bzImage did not run")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

type bootResult struct {
	code   int
	stderr string
	maxRSS int64 // KiB
}

func runBoot(t *testing.T, env []string, args ...string) bootResult {
	t.Helper()
	cmd := exec.Command(bootBin(t), args...)
	cmd.Env = append(append(os.Environ(), "KTSTR_KERNEL="), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v: still running after 60s (reading without bound?)", args)
	}
	r := bootResult{stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	return r
}

// Bad arguments are refused before any VM exists, with exit 2 and one
// line: memory below the minimum, topologies beyond 8-bit APIC IDs,
// special files as --kernel or --initramfs (without reading them), a
// truncated or inconsistent bzImage, an initramfs larger than the guest's
// RAM (without reading it).
func TestArgumentValidation(t *testing.T) {
	kpath, kb := fixtureKernel(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("truncated", kb[:len(kb)/2])
	bogus := append([]byte(nil), kb...)
	binary.LittleEndian.PutUint32(bogus[0x1F4:], uint32(len(kb))) // syssize 16x the file
	bogusSys := write("bogus-syssize", bogus)
	bogus = append([]byte(nil), kb...)
	bogus[0x1F1] = 0xFF // setup_sects
	bogusSetup := write("bogus-setup", bogus)
	// A sparse 2 GiB initramfs: refused for a 256 MiB guest from its size.
	huge := filepath.Join(dir, "huge.cpio")
	if f, err := os.Create(huge); err != nil {
		t.Fatal(err)
	} else {
		f.Truncate(2 << 30)
		f.Close()
	}
	small := write("small.cpio", []byte("070701"))
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--kernel", kpath, "--memory", "1"}, "below the 32 MiB minimum"},
		{[]string{"--kernel", kpath, "--memory", "16M"}, "below the 32 MiB minimum"},
		{[]string{"--kernel", kpath, "--topology", "1n1l255c1t"}, "at most 254"},
		{[]string{"--kernel", kpath, "--cpus", "1024"}, "at most 254"},
		{[]string{"--kernel", kpath, "--topology", "3n3l65c1t"}, "APIC ID"},
		{[]string{"--kernel", "/dev/zero"}, "not a regular file"},
		{[]string{"--kernel", fifo}, "not a regular file"},
		{[]string{"--kernel", dir}, "holds neither arch/x86/boot/bzImage nor bzImage"}, // a directory is resolved as a source tree (ktstr-kernel(1))
		{[]string{"--kernel", kpath, "--initramfs", "/dev/zero"}, "not a regular file"},
		{[]string{"--kernel", kpath, "--initramfs", small, "--initramfs", fifo}, "not a regular file"},
		{[]string{"--kernel", truncated}, "truncated"},
		{[]string{"--kernel", bogusSys}, "syssize"},
		{[]string{"--kernel", bogusSetup}, "setup sectors"},
		{[]string{"--kernel", kpath, "--memory", "256M", "--initramfs", huge}, "does not fit"},
		{[]string{"--kernel", kpath, "--memory", "40M"}, "more --memory"},
	} {
		r := runBoot(t, nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: exit %d stderr %q; want exit 2 with one line containing %q", tc.args, r.code, r.stderr, tc.msg)
		}
		if r.maxRSS > 256<<10 {
			t.Errorf("%v: max RSS %d MiB: the input was read", tc.args, r.maxRSS>>10)
		}
	}
}

// A control FIFO left by a killed ktstr-boot (no reader, dead pid) is
// removed by the next start; one with a reader (a live ktstr-boot, maybe
// in another pid namespace) or of a live pid is kept.
func TestStaleControlFIFOsSwept(t *testing.T) {
	kpath, _ := fixtureKernel(t)
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := dead.Process.Pid
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	mk := func(pid int) string {
		p := filepath.Join(dir, fmt.Sprintf("ktstr-boot-%d.ctl", pid))
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(deadPID)
	livePID := mk(live.Process.Pid)
	withReader := mk(deadPID + 100000) // no such pid, but held open below
	rfd, err := unix.Open(withReader, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	notFIFO := filepath.Join(dir, fmt.Sprintf("ktstr-boot-%d.ctl", deadPID+200000))
	os.WriteFile(notFIFO, nil, 0o600)

	// The run itself may fail later (no /dev/kvm here, or a guest that
	// cannot boot in time): the sweep happens before the VM is made.
	r := runBoot(t, []string{"TMPDIR=" + dir}, "--kernel", kpath, "--timeout", "1s")
	t.Logf("ktstr-boot: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	if _, err := os.Lstat(stale); err == nil {
		t.Errorf("stale FIFO %s (dead pid, no reader) was not removed", stale)
	}
	for _, p := range []string{livePID, withReader, notFIFO} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
