package lab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needLab(t *testing.T) string {
	t.Helper()
	if m := Missing(); m != "" {
		t.Skipf("SKIP (lab fixture missing): %s", m)
	}
	if _, err := FindBusybox(); err != nil {
		t.Skipf("SKIP (lab fixture missing): %v", err)
	}
	return os.Getenv("KTSTR_KERNEL")
}

const refInit = "#!/bin/busybox sh\n/bin/busybox --install -s /bin\n" +
	"mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n" +
	FindPortShell +
	`p=$(findport ktstr) || { echo "no ktstr port"; poweroff -f; }
echo "REF cpus=$(grep -c ^processor /proc/cpuinfo) cmdline=$(cat /proc/cmdline)"
printf 'stream-hello cpus=%s\n' "$(grep -c ^processor /proc/cpuinfo)" > $p
poweroff -f
`

// TestReferenceBoot boots the fixture kernel with a busybox guest that
// writes a line to the ktstr port, and checks the stream, console, exit
// status and the options that reach the guest.
func TestReferenceBoot(t *testing.T) {
	k := needLab(t)
	dir := t.TempDir()
	a, err := BusyboxArchive(refInit)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := a.WriteFile(initrd); err != nil {
		t.Fatal(err)
	}
	var live bytes.Buffer
	streamPath := filepath.Join(dir, "stream")
	r, err := Reference(context.Background(), ReferenceOptions{
		Kernel: k, Initramfs: initrd, CPUs: 2, MemoryMiB: 256,
		Cmdline: "quiet ktstr.lab=probe", Timeout: 90 * time.Second,
		StreamPath: streamPath, Console: &live,
		MemFile: filepath.Join(dir, "mem"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, r.Console)
	}
	if want := "stream-hello cpus=2\n"; string(r.Stream) != want {
		t.Errorf("stream = %q, want %q\nconsole:\n%s", r.Stream, want, r.Console)
	}
	if b, _ := os.ReadFile(streamPath); !bytes.Equal(b, r.Stream) {
		t.Errorf("stream file = %q, want %q", b, r.Stream)
	}
	if !strings.Contains(string(r.Console), "ktstr.lab=probe") {
		t.Errorf("console lacks the extra cmdline:\n%s", r.Console)
	}
	if !bytes.Equal(live.Bytes(), r.Console) {
		t.Errorf("live console copy differs from Result.Console")
	}
	if st, err := os.Stat(filepath.Join(dir, "mem")); err != nil || st.Size() != 256<<20 {
		t.Errorf("memory backing file: %v size %v", err, st)
	}
	t.Logf("reference boot: wall %v", r.Wall)
}

// TestReferenceTimeout checks that a guest that never exits is killed at
// the hard timeout and reported as timed out.
func TestReferenceTimeout(t *testing.T) {
	k := needLab(t)
	dir := t.TempDir()
	a, err := BusyboxArchive("#!/bin/busybox sh\nwhile :; do /bin/busybox sleep 1; done\n")
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := a.WriteFile(initrd); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir() // a timeout on purpose: keep its evidence here
	t.Setenv(EvidenceEnv, root)
	r, err := Reference(context.Background(), ReferenceOptions{
		Kernel: k, Initramfs: initrd, CPUs: 1, MemoryMiB: 128, Cmdline: "quiet",
		Timeout: 4 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.TimedOut || r.ExitCode != -1 || r.Err() == nil {
		t.Fatalf("TimedOut=%v ExitCode=%d Err=%v, want a reported timeout", r.TimedOut, r.ExitCode, r.Err())
	}
	if !strings.Contains(r.Err().Error(), "evidence kept in "+root) {
		t.Fatalf("a timed-out run must keep its evidence: %v", r.Err())
	}
	if r.Wall > 30*time.Second {
		t.Fatalf("kill took %v", r.Wall)
	}
}
