package lab

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/qemu"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func encodeFrames(t *testing.T, msgs ...wire.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	for _, m := range msgs {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestKeepEvidence(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EvidenceEnv, root)
	src := filepath.Join(t.TempDir(), "big.console")
	big := append(bytes.Repeat([]byte("x"), EvidenceFileMax), []byte("\nthe last line\n")...)
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := KeepEvidence("my test/with:odd*name", "it broke", EvidenceFile{Name: "console.txt", Path: src},
		EvidenceFile{Name: "stream.ktstr", Data: []byte("abc")}, EvidenceFile{Name: "fifo.txt", Path: fifo},
		EvidenceFile{Name: "/dev/zero", Path: "/dev/zero"}, EvidenceFile{Name: "why.txt", Data: []byte("forged")},
		EvidenceFile{Name: "missing.txt", Path: filepath.Join(root, "nope")})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != root || !strings.Contains(filepath.Base(dir), "-my_test_with_odd_name-") {
		t.Fatalf("dir %s not a safe name under %s", dir, root)
	}
	con, _ := os.ReadFile(filepath.Join(dir, "console.txt"))
	if len(con) != EvidenceFileMax || !bytes.HasSuffix(con, []byte("the last line\n")) {
		t.Fatalf("console kept %d bytes (want %d, its tail)", len(con), EvidenceFileMax)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "stream.ktstr")); string(b) != "abc" {
		t.Fatalf("stream %q", b)
	}
	why, _ := os.ReadFile(filepath.Join(dir, "why.txt"))
	for _, w := range []string{"it broke", "fifo.txt: " + fifo + " is not a regular file", "zero: /dev/zero is not a regular file", `skipped a file named "why.txt"`, "missing.txt:"} {
		if !strings.Contains(string(why), w) {
			t.Errorf("why.txt lacks %q:\n%s", w, why)
		}
	}
	for _, n := range []string{"fifo.txt", "zero"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s was written", n)
		}
	}
	msg := EvidenceMessage(dir, nil, big)
	if !strings.HasPrefix(msg, "evidence kept in "+dir+"; console's last lines:\n") || !strings.HasSuffix(msg, "the last line") {
		t.Fatalf("message %q", msg[max(0, len(msg)-300):])
	}
	if m := EvidenceMessage("", fmt.Errorf("read-only"), nil); m != "evidence NOT kept: read-only; the console is empty" {
		t.Fatalf("message %q", m)
	}
}

func TestEvidencePrune(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EvidenceEnv, root)
	other := filepath.Join(root, "notes") // not an evidence directory: kept
	os.Mkdir(other, 0o755)
	for i := 0; i < EvidenceKeep+5; i++ {
		if _, err := KeepEvidence(fmt.Sprintf("run%02d", i), "x"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct millisecond stamps
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != EvidenceKeep+1 {
		t.Fatalf("%d entries, want %d evidence directories and notes/", len(ents), EvidenceKeep)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("pruning removed a directory it did not write")
	}
	for _, e := range ents {
		for i := 0; i < 5; i++ {
			if strings.Contains(e.Name(), fmt.Sprintf("-run%02d-", i)) {
				t.Fatalf("oldest run %s survived", e.Name())
			}
		}
	}
}

func TestEvidenceRootUnwritable(t *testing.T) {
	t.Setenv(EvidenceEnv, "/dev/null/evidence")
	if _, err := KeepEvidence("x", "y"); err == nil || !strings.Contains(err.Error(), EvidenceEnv) {
		t.Fatalf("err = %v, want one naming %s", err, EvidenceEnv)
	}
}

// TestFinishReference judges results the way Reference does, without QEMU.
func TestFinishReference(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EvidenceEnv, root)
	noExit := encodeFrames(t, wire.GuestReady{Kernel: "6.12"}, wire.Log{Text: "starting"})
	withExit := append(append([]byte{}, noExit...), encodeFrames(t, wire.GuestExit{Code: 0})...)
	con := []byte("Run /init as init process\nKernel panic - not syncing: Attempted to kill init! exitcode=0x00000200\n")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		r        Result
		err      string // "" no error
		evidence bool
		ended    bool
	}{
		{"pass", context.Background(), Result{Result: qemu.Result{Stream: withExit}}, "", false, false},
		{"no frames at all (busybox guest)", context.Background(), Result{}, "", false, false},
		{"frames, no guest_exit", context.Background(), Result{Result: qemu.Result{Stream: noExit, Console: con}}, "the guest wrote 2 frames but no guest_exit", true, true},
		{"timeout", context.Background(), Result{Result: qemu.Result{Stream: noExit, TimedOut: true, ExitCode: -1}}, "QEMU killed after", true, false},
		{"QEMU error", context.Background(), Result{Result: qemu.Result{ExitCode: 1, Stderr: []byte("qemu: bad option")}}, "QEMU exited with status 1: qemu: bad option", true, false},
		{"cancelled by the caller", cancelled, Result{Result: qemu.Result{Stream: noExit, ExitCode: -1}}, "QEMU exited with status -1", false, true},
		{"corrupt bytes then guest_exit", context.Background(), Result{Result: qemu.Result{Stream: append([]byte("garbage"), withExit...)}}, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			r := tc.r
			finishReference(tc.ctx, &ReferenceOptions{Name: "unit", Log: &log}, &r)
			err := r.Err()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Err() = %v, want %q", err, tc.err)
			}
			if (r.Evidence != "") != tc.evidence {
				t.Fatalf("Evidence = %q, want kept=%v", r.Evidence, tc.evidence)
			}
			if tc.evidence {
				dir := strings.TrimPrefix(strings.SplitN(r.Evidence, ";", 2)[0], "evidence kept in ")
				b, err := os.ReadFile(filepath.Join(dir, "stream.ktstr"))
				if err != nil || !bytes.Equal(b, r.Stream) {
					t.Fatalf("kept stream: %v", err)
				}
				if !strings.Contains(err2s(r.Err()), dir) {
					t.Fatalf("Err() does not name %s: %v", dir, r.Err())
				}
			}
			if got := strings.Contains(log.String(), "ended without a guest_exit frame"); got != tc.ended {
				t.Fatalf("log %q, want the no-guest_exit report=%v", log.String(), tc.ended)
			}
			if tc.ended && !strings.Contains(log.String(), "Attempted to kill init") && len(r.Console) > 0 {
				t.Fatalf("report lacks the console tail: %q", log.String())
			}
		})
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReferenceNoGuestExit boots a busybox guest that writes two frames
// and then crashes the kernel (panic=-1: reboot, and QEMU -no-reboot exits
// 0): the shape of issue 20's early end. The run must fail with the
// evidence kept and the console's panic in the message.
func TestReferenceNoGuestExit(t *testing.T) {
	k := needLab(t)
	root := t.TempDir()
	t.Setenv(EvidenceEnv, root)
	dir := t.TempDir()
	frames := filepath.Join(dir, "frames")
	if err := os.WriteFile(frames, encodeFrames(t, wire.GuestReady{Kernel: "test"}, wire.Log{Text: "about to crash"}), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := BusyboxArchive("#!/bin/busybox sh\n/bin/busybox --install -s /bin\n" +
		"mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n" + FindPortShell +
		"p=$(findport ktstr) || { echo no port; poweroff -f; }\ncat /frames > $p; sleep 1; echo c > /proc/sysrq-trigger\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.FileWithLibs("frames", frames); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := a.WriteFile(initrd); err != nil {
		t.Fatal(err)
	}
	var log syncBuf
	r, err := Reference(context.Background(), ReferenceOptions{
		Kernel: k, Initramfs: initrd, CPUs: 1, MemoryMiB: 256, Timeout: 90 * time.Second,
		Name: t.Name(), Log: &log, HangWarn: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.TimedOut {
		t.Fatalf("timed out: %v", r.Err())
	}
	e := err2s(r.Err())
	if !strings.Contains(e, "the guest wrote 2 frames but no guest_exit; QEMU exited 0") || !strings.Contains(e, "evidence kept in "+root) ||
		!strings.Contains(e, "Kernel panic") {
		t.Fatalf("Err() = %s", e)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 {
		t.Fatalf("%d evidence directories, want 1", len(ents))
	}
	for _, f := range []string{"console.txt", "stream.ktstr", "qemu-stderr.txt", "why.txt"} {
		if _, err := os.Stat(filepath.Join(root, ents[0].Name(), f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(log.String(), "lab: TestReferenceNoGuestExit: the run ended without a guest_exit frame: QEMU exited 0") {
		t.Fatalf("log: %s", log.String())
	}
	t.Logf("%s\n%s", e, log.String())
}

// syncBuf is a buffer that the run's goroutines may write while the test
// reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeT struct {
	failed   bool
	cleanups []func()
	logs     []string
}

func (f *fakeT) Failed() bool      { return f.failed }
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Name() string      { return "TestFake/sub" }
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func TestKeepOnFailure(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EvidenceEnv, root)
	for _, tc := range []struct {
		name     string
		failed   bool
		evidence string
		want     int // directories kept
	}{
		{"passing test keeps nothing", false, "", 0},
		{"failing test keeps the boot", true, "", 1},
		{"already kept by Reference: not twice", true, "evidence kept in X", 1},
	} {
		f := &fakeT{failed: tc.failed}
		KeepOnFailure(f, &Result{Result: qemu.Result{Console: []byte("boot\n"), Stream: []byte{1}}, Evidence: tc.evidence})
		for _, c := range f.cleanups {
			c()
		}
		ents, _ := os.ReadDir(root)
		if len(ents) != tc.want {
			t.Fatalf("%s: %d directories, want %d", tc.name, len(ents), tc.want)
		}
		if tc.want == 1 && tc.evidence == "" && (len(f.logs) != 1 || !strings.Contains(f.logs[0], "evidence kept in "+root)) {
			t.Fatalf("%s: logs %q", tc.name, f.logs)
		}
	}
}
