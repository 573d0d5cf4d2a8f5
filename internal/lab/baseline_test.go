package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// l2SchedInit is the L2 init used until cmd/ktstr-init lands: it writes a
// boot marker to the ktstr port first thing, attaches the packed scheduler
// (/usr/lib/ktstr/scheduler, from ktstr-mkinitramfs --scheduler), reports
// the sched_ext state and powers off.
const l2SchedInit = "#!/bin/busybox sh\n" +
	"export PATH=/bin:/usr/bin\n" +
	"mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null\n" +
	FindPortShell +
	`p=$(findport ktstr) || p=/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
echo "ktstr-lab-l2 ready uptime=$(up) cpus=$(grep -c ^processor /proc/cpuinfo)" > $p
s=/usr/lib/ktstr/scheduler
if [ -x $s ]; then
  $s > /tmp/sched.log 2>&1 &
  pid=$!
  i=0; while [ $i -lt 60 ] && [ "$(cat /sys/kernel/sched_ext/state)" != enabled ]; do sleep 1; i=$((i+1)); done
  echo "sched_ext=$(cat /sys/kernel/sched_ext/state) after ${i}s ops=$(cat /sys/kernel/sched_ext/root/ops 2>/dev/null)" > $p
  kill -INT $pid; wait $pid
  echo "scheduler exit=$? $(dmesg | grep -o 'sched_ext: BPF scheduler.*' | tail -1)" > $p
else
  echo "sched_ext=none (no scheduler packed)" > $p
fi
echo "ktstr-lab-l2 done uptime=$(up)" > $p
poweroff -f
`

var (
	l1FilesOnce sync.Once
	l1FilesErr  error
)

// l1Files puts the kernel and the static ktstr-lab tool into L1's data share.
func l1Files(t *testing.T) {
	t.Helper()
	l1FilesOnce.Do(func() {
		b, err := os.ReadFile(os.Getenv("KTSTR_KERNEL"))
		if err == nil {
			err = os.WriteFile(filepath.Join(l1DataDir(), "bzImage"), b, 0o644)
		}
		if err == nil {
			_, err = BuildTool(context.Background(), l1DataDir(), "test/lab/ktstr-lab")
		}
		l1FilesErr = err
	})
	if l1FilesErr != nil {
		t.Fatal(l1FilesErr)
	}
}

var bootFigures = regexp.MustCompile(`first stream byte at ([0-9.]+)s, wall ([0-9.]+)s`)

// TestNestedQEMUBaseline proves the nested lab end to end: QEMU with
// -enable-kvm inside L1 boots the fixture kernel as a 1-vCPU L2 with an
// initramfs made by ktstr-mkinitramfs holding a real scheduler, which must
// attach (1 vCPU: 2-vCPU L2 guests can hang L1, see docs/nested-lab.md), and
// its timings (QEMU start to the first stream byte, and to exit)
// are the baseline of ktstr-boot's boot-time benchmark. Retry policy: an
// L2 run killed by its hard timeout is retried once and logged; a second
// timeout, or any wrong result, fails.
func TestNestedQEMUBaseline(t *testing.T) {
	sharedL1(t)
	mk := FindMkInitramfs()
	if mk == "" {
		t.Skip("SKIP: ktstr-mkinitramfs not built (run make, or set KTSTR_BIN)")
	}
	bb, err := FindBusybox()
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	l1Files(t)
	dir := t.TempDir()
	initPath := filepath.Join(dir, "init")
	os.WriteFile(initPath, []byte(l2SchedInit), 0o755)
	args := []string{"--no-cache", "--compress", "none", "-o", filepath.Join(l1DataDir(), "l2-sched.cpio"), "--init", initPath, "--busybox", bb}
	sched := filepath.Join(os.Getenv("KTSTR_SCHEDULERS"), "scx_simple")
	haveSched := os.Getenv("KTSTR_SCHEDULERS") != ""
	if _, err := os.Stat(sched); err != nil || !haveSched {
		t.Logf("LOUD: KTSTR_SCHEDULERS/scx_simple missing: booting without a scheduler (EEVDF)")
		haveSched = false
	} else {
		args = append(args, "--scheduler", sched)
	}
	if out, err := exec.Command(mk, args...).CombinedOutput(); err != nil {
		t.Fatalf("ktstr-mkinitramfs: %v: %s", err, out)
	}
	cmd := "/data/ktstr-lab reference --kernel /data/bzImage --initramfs /data/l2-sched.cpio --accel kvm --cpu-model host " +
		"--machine-opts rtc=off --cpus 1 --memory 512 --cmdline 'quiet " + L2Cmdline + "' --timeout 150s --quiet-console --console /tmp/l2.con --stream /tmp/l2.stream" +
		"; rc=$?; cat /tmp/l2.stream; exit $rc"
	var r *RunResult
	for attempt := 1; attempt <= 2; attempt++ {
		r = runL1(t, cmd, 200*time.Second)
		if r.ExitCode != 3 { // 3: ktstr-lab's hard timeout killed the L2 QEMU
			break
		}
		fmt.Fprintf(os.Stderr, "internal/lab: L2 boot attempt %d TIMED OUT (retry policy: one retry): %s\n", attempt, tail(r.Stderr, 300))
	}
	out := string(r.Stdout)
	if r.ExitCode != 0 || !strings.Contains(out, "ktstr-lab-l2 ready") || !strings.Contains(out, "ktstr-lab-l2 done") {
		t.Fatalf("L2 boot failed: exit %d\nstream:\n%s\nstderr:\n%s", r.ExitCode, out, r.Stderr)
	}
	if haveSched && !strings.Contains(out, "sched_ext=enabled") {
		t.Fatalf("scx_simple did not attach in the nested L2:\n%s", out)
	}
	m := bootFigures.FindStringSubmatch(string(r.Stderr))
	if m == nil {
		t.Fatalf("no timing line from ktstr-lab: %s", r.Stderr)
	}
	fmt.Fprintf(os.Stderr, "internal/lab: BASELINE QEMU -enable-kvm in L1, 1-vCPU L2, fixture kernel + scx_simple: first stream byte %ss, exit %ss\n", m[1], m[2])
	t.Logf("L2 stream:\n%s", out)
}
