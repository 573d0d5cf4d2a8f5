package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNestedL1 checks that L1 has a real /dev/kvm (nested SVM), that
// commands' output and status come back, and that the 9p share works both
// ways.
func TestNestedL1(t *testing.T) {
	n := sharedL1(t)
	ctx := context.Background()
	r, err := n.Run(ctx, "grep -c -w svm /proc/cpuinfo; ls -l /dev/kvm; qemu-system-x86_64 --version | head -1", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Err() != nil || !strings.HasPrefix(string(r.Stdout), "1\n") || !strings.Contains(string(r.Stdout), "/dev/kvm") || !strings.Contains(string(r.Stdout), "QEMU emulator") {
		t.Fatalf("L1 lacks svm, /dev/kvm or QEMU: %v\n%s%s", r.Err(), r.Stdout, r.Stderr)
	}
	if err := os.WriteFile(filepath.Join(l1DataDir(), "in"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = n.Run(ctx, "cat /data/in; echo -n from-l1 > /data/out; exit 3", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Stdout) != "from host" || r.ExitCode != 3 {
		t.Errorf("9p read: stdout %q exit %d stderr %q", r.Stdout, r.ExitCode, r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(l1DataDir(), "out")); string(b) != "from-l1" {
		t.Errorf("9p write: host sees %q", b)
	}
	r, err = n.Run(ctx, "sleep 60", 2*time.Second)
	if err != nil || !r.TimedOut {
		t.Errorf("timeout in L1: %+v %v", r, err)
	}
}

// TestNestedKVMProbe runs the probe inside L1, whose /dev/kvm is nested
// SVM: it must be classified as hardware-assisted (the host's emulated one
// is covered by TestProbeKVM).
func TestNestedKVMProbe(t *testing.T) {
	n := sharedL1(t)
	if _, err := BuildTool(context.Background(), l1DataDir(), "test/lab/ktstr-lab"); err != nil {
		t.Fatal(err)
	}
	r, err := n.Run(context.Background(), "/data/ktstr-lab kvm-probe", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("L1: %s", r.Stdout)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "kvm: hardware") {
		t.Fatalf("probe in L1: exit %d: %s%s", r.ExitCode, r.Stdout, r.Stderr)
	}
}
