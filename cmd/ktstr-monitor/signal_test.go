package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

// withStdio runs the monitor in-process with stdin from a pipe the test
// writes and stdout discarded; it returns the exit code and stderr.
func withStdio(t *testing.T, args []string, feed func(w *os.File)) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, stdout := os.Stdin, os.Stdout
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	os.Stdin, os.Stdout = r, devnull
	defer func() { os.Stdin, os.Stdout = stdin, stdout; devnull.Close(); r.Close() }()
	go func() { feed(w) }()
	var stderr strings.Builder
	code := cmdutil.Run(newApp(), append([]string{"ktstr-monitor"}, args...), &stderr)
	w.Close()
	return code, stderr.String()
}

// TestSignalExitsNonZero: SIGTERM or SIGINT before the stream ends is not
// a clean end: the monitor exits 128+signal and says so.
func TestSignalExitsNonZero(t *testing.T) {
	t.Setenv("KTSTR_VMLINUX", "")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		code, stderr := withStdio(t, nil, func(w *os.File) {
			var b bytes.Buffer
			wire.NewEncoder(&b).Encode(wire.Log{Text: "running"})
			w.Write(b.Bytes())
			time.Sleep(200 * time.Millisecond)
			syscall.Kill(os.Getpid(), sig)
		})
		if code != 128+int(sig) || !strings.Contains(stderr, "interrupted") {
			t.Errorf("%v: exit %d, stderr %q; want %d and an interrupted message", sig, code, stderr, 128+int(sig))
		}
	}
}

func fixtureVmlinux(t *testing.T) string {
	t.Helper()
	return testenv.Need(t, testenv.VmlinuxVar, "the guest-memory cases need the kernel's vmlinux")
}

// TestGuestMemFIFORefused: a FIFO as --guest-mem is refused at once
// (opening it would block forever and make the monitor deaf to signals).
func TestGuestMemFIFORefused(t *testing.T) {
	v := fixtureVmlinux(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, stderr = withStdio(t, []string{"--guest-mem", fifo, "--vmlinux", v}, func(w *os.File) { w.Close() })
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("ktstr-monitor blocked on a FIFO given as --guest-mem")
	}
	if code != 2 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("exit %d, stderr %q; want 2 and not a regular file", code, stderr)
	}
}

// TestGuestMemTruncatedWhileMapped: the RAM file shrinking under the
// mapping stops sampling with a clear message and exit 2, not a SIGBUS
// panic trace.
func TestGuestMemTruncatedWhileMapped(t *testing.T) {
	v := fixtureVmlinux(t)
	ram := filepath.Join(t.TempDir(), "ram")
	if err := os.WriteFile(ram, make([]byte, 64<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := withStdio(t, []string{"--guest-mem", ram, "--vmlinux", v, "--sample-interval", "10ms"}, func(w *os.File) {
		time.Sleep(3 * time.Second) // vmlinux load, then a few locate attempts
		os.Truncate(ram, 0)
		time.Sleep(1 * time.Second)
		io.WriteString(w, "")
		w.Close()
	})
	if code != 2 || !strings.Contains(stderr, "sampling stopped") || strings.Contains(stderr, "goroutine") {
		t.Errorf("exit %d, stderr %q; want 2 and sampling stopped", code, stderr)
	}
}
