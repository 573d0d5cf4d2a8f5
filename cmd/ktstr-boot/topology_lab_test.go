package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/lab"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

// probeInit is the L2 guest's /init: print what the kernel derived about
// its topology, then power off (through the ACPI sleep register).
//
// With ktstr.exec= on the command line it is instead a minimal
// implementation of --exec's guest contract: run the command with its
// output on hvc0, report the status line, power off.
const probeInit = "#!/bin/busybox sh\n/bin/busybox --install -s /bin\n" +
	"mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n" +
	`c=$(sed -n 's/.*ktstr\.exec=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$c" ]; then
  sh -c "$(echo "$c" | base64 -d)" >/dev/hvc0 2>&1
  echo "` + runconfig.ExecStatusPrefix + `$?" >/dev/hvc0
  poweroff -f
fi
# The probe goes to hvc0 (virtio: written out before the write returns);
# without it, wait for the UART's transmit count to settle, since
# poweroff does not drain the tty.
[ -c /dev/hvc0 ] && exec >/dev/hvc0 2>&1
echo "KTOPO uptime $(cut -d' ' -f1 /proc/uptime)"
grep -q ktopo.quick /proc/cmdline && poweroff -f` + "\n" +
	topology.GuestProbeScript + `
t=; while :; do n=$(grep '^0:' /proc/tty/driver/serial); [ "$n" = "$t" ] && break; t=$n; sleep 1; done
poweroff -f
`

// labShapes are the shapes the guest is checked against (issue 7): one
// vCPU, SMT + two LLCs in a package, two NUMA nodes with two LLCs each, and
// 32 vCPUs. KTSTR_LAB_SHAPES overrides the list (space-separated).
var labShapes = []string{"1n1l1c1t", "1n2l2c2t", "2n4l2c1t", "2n4l4c2t"}

// TestTopologyInGuest boots the fixture kernel under ktstr-boot on the
// nested lab's real KVM, once per shape, and checks that the guest's
// sysfs topology, L3 sharing, NUMA nodes and scheduling domains are
// exactly the requested shape.
func TestTopologyInGuest(t *testing.T) {
	if os.Getenv("KTSTR_LAB_TOPOLOGY") != "1" {
		t.Skip("SKIP: the nested topology check boots L1 and one L2 per shape (minutes); set KTSTR_LAB_TOPOLOGY=1 to run it")
	}
	ctx := context.Background()
	shapes := labShapes
	if s := os.Getenv("KTSTR_LAB_SHAPES"); s != "" {
		shapes = strings.Fields(s)
	}
	l1 := startTopologyLab(t, l1CPUsFor(t, shapes))
	for _, shape := range shapes {
		topo, err := topology.FromText(shape)
		if err != nil {
			t.Fatal(err)
		}
		// Nested boots slow down with the vCPU count (all of L2 runs on
		// L1's one CPU): allow 5 minutes plus 20 s per vCPU.
		limit := 300*time.Second + time.Duration(len(topo.CPUs))*20*time.Second
		mirror := ""
		if os.Getenv("KTSTR_LAB_CONSOLE") != "" {
			// Copy L2's console onto L1's, so a hang shows how far L2 got.
			mirror = fmt.Sprintf("touch /tmp/console-%s.txt; (tail -F /tmp/console-%s.txt >/dev/ttyS0 2>/dev/null &); ", shape, shape)
		}
		fifo := "none"
		if d := os.Getenv("KTSTR_LAB_REGS_EVERY"); d != "" {
			// Have ktstr-boot print every vCPU's registers now and then
			// (a hang's whereabouts, on the console).
			fifo = "/tmp/ctl-" + shape
			mirror += fmt.Sprintf("(while sleep %s; do [ -p %s ] && echo regs >%s; done &); ", d, fifo, fifo)
		}
		cmd := mirror + fmt.Sprintf("/data/ktstr-boot --kernel /data/bzImage --initramfs /data/probe.cpio --topology %s --memory 512M --timeout %ds --control-fifo %s --console /tmp/console-%s.txt --append '%s' >/dev/null; echo ktstr-boot-rc=$?; cat /tmp/console-%s.txt", shape, int(limit.Seconds()), fifo, shape, l2Append(), shape)
		start := time.Now()
		r, err := l1.Run(ctx, cmd, limit+30*time.Second)
		if err != nil {
			t.Fatalf("%s: lab failed: %v", shape, err)
		}
		wall := time.Since(start)
		out := string(r.Stdout)
		v, perr := topology.ParseGuestProbe(out)
		uptime := ""
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "KTOPO uptime "); i >= 0 {
				uptime = strings.TrimSpace(l[i+len("KTOPO uptime "):])
			}
		}
		fmt.Fprintf(os.Stderr, "topology lab: %s (%d vCPUs): ktstr-boot wall %v, guest uptime at init %ss, %s\n",
			shape, len(topo.CPUs), wall.Round(time.Millisecond), uptime, lastLine(out, "ktstr-boot-rc="))
		if perr != nil {
			t.Errorf("%s: probe output: %v", shape, perr)
			continue
		}
		if bad := topo.CheckGuest(v); len(bad) > 0 {
			t.Errorf("%s: guest sees another shape:\n  %s\nconsole:\n%s", shape, strings.Join(bad, "\n  "), out)
			continue
		}
		// poweroff -f goes through the ACPI sleep register: exit 122
		// (powered off without a guest-exit frame), not a timeout.
		if !strings.Contains(out, "ktstr-boot-rc=122") {
			t.Errorf("%s: ktstr-boot did not end by ACPI poweroff: %s", shape, lastLine(out, "ktstr-boot-rc="))
		}
	}

	checkPerfModeInLab(ctx, t, l1, l1CPUsFor(t, shapes))

	// --exec: the command's output on stdout, its status as the exit code.
	r, err := l1.Run(ctx, `/data/ktstr-boot --kernel /data/bzImage --initramfs /data/probe.cpio --memory 256M --timeout 300s --control-fifo none --console /tmp/exec-console.txt --exec 'echo "hello from $(uname -s)"; exit 7'; echo ktstr-boot-rc=$?`, 330*time.Second)
	if err != nil {
		t.Fatalf("--exec: lab failed: %v", err)
	}
	if out := string(r.Stdout); !strings.Contains(out, "hello from Linux\nktstr-boot-rc=7") {
		t.Errorf("--exec: want the command's output and exit status 7, got:\n%s\n%s", out, r.Stderr)
	}
}

// checkPerfModeInLab runs --perf-mode on L1's (real, nested) KVM: first
// refused for want of huge pages (exit 3, saying how many), then with a
// huge-page pool and L1's CPU 1 as the vCPU's own CPU, to the guest's
// init and an ACPI poweroff, with the KVM exits disabled that L1's KVM
// offers.
func checkPerfModeInLab(ctx context.Context, t *testing.T, l1 *lab.Nested, l1CPUs int) {
	if l1CPUs < 2 {
		t.Logf("--perf-mode lab check skipped: L1 has %d CPU (it needs one for itself and one for the vCPU)", l1CPUs)
		return
	}
	const boot = `KTSTR_CPUS=1 /data/ktstr-boot --kernel /data/bzImage --initramfs /data/probe.cpio --cpus 1 --memory 128M --perf-mode --timeout 300s --control-fifo none --console /tmp/perf-console.txt --append '` + lab.L2Cmdline + `' -- ktopo.quick 2>/tmp/perf-log.txt >/dev/null; echo ktstr-boot-rc=$?; cat /tmp/perf-log.txt; grep -a KTOPO /tmp/perf-console.txt`
	r, err := l1.Run(ctx, "echo 0 >/proc/sys/vm/nr_hugepages; "+boot, 60*time.Second)
	if err != nil {
		t.Fatalf("--perf-mode refusal: lab failed: %v", err)
	}
	if out := string(r.Stdout); !strings.Contains(out, "ktstr-boot-rc=3\n") || !strings.Contains(out, "huge pages") {
		t.Errorf("--perf-mode without huge pages: want exit 3 naming huge pages, got:\n%s", out)
	}
	start := time.Now()
	r, err = l1.Run(ctx, "echo 80 >/proc/sys/vm/nr_hugepages; grep HugePages_Free /proc/meminfo; "+boot, 330*time.Second)
	if err != nil {
		t.Fatalf("--perf-mode: lab failed: %v", err)
	}
	out := string(r.Stdout)
	fmt.Fprintf(os.Stderr, "topology lab: --perf-mode 1 vCPU on L1 CPU 1: wall %v, %s\n%s", time.Since(start).Round(time.Millisecond), lastLine(out, "ktstr-boot-rc="), out)
	if !strings.Contains(out, "ktstr-boot-rc=122\n") || !strings.Contains(out, "KTOPO uptime") {
		t.Errorf("--perf-mode: want the guest's init and an ACPI poweroff (122), got:\n%s", out)
	}
	if !strings.Contains(out, "perf mode: disabled ") && !strings.Contains(out, "perf mode: this KVM lets no exits be disabled") {
		t.Errorf("--perf-mode: no note of the KVM exits it disabled:\n%s", out)
	}
}

// l1Console keeps L1's console in a file named by KTSTR_LAB_CONSOLE (for
// diagnosing a slow or failed L1 boot), else nowhere.
func l1Console(t *testing.T, dir string) io.Writer {
	p := os.Getenv("KTSTR_LAB_CONSOLE")
	if p == "" {
		return nil
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// startTopologyLab builds ktstr-boot and the probe initramfs into a
// directory shared with L1 as /data, boots L1 (one retry) and returns it.
func startTopologyLab(t *testing.T, l1CPUs int) *lab.Nested {
	t.Helper()
	if m := lab.Missing(); m != "" {
		t.Skipf("SKIP (lab fixture missing): %s", m)
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("SKIP: the nested lab needs an x86_64 host")
	}
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	agent, err := lab.BuildAgent(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.BuildTool(ctx, data, "cmd/ktstr-boot"); err != nil {
		t.Fatal(err)
	}
	a, err := lab.BusyboxArchive(probeInit)
	if err != nil {
		t.Skipf("SKIP (lab fixture missing): %v", err)
	}
	if err := a.WriteFile(filepath.Join(data, "probe.cpio")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", os.Getenv("KTSTR_KERNEL"), filepath.Join(data, "bzImage")).CombinedOutput(); err != nil {
		t.Fatalf("copy kernel: %v %s", err, out)
	}
	// Instruction-counted time: on a loaded host a starved L1 otherwise
	// drowns in timer ticks in early boot (seen: no progress past TSC
	// calibration in 7 minutes at load 17); with it L1 boots in ~35 s
	// there. Times inside L1 are then virtual (1 ns per instruction). It
	// also makes QEMU run every L1 CPU on one host thread, round-robin:
	// an L1 of 32 CPUs that way went idle for good right after boot (its
	// agent never answered), while with one thread per CPU (MTTCG, the
	// default without -icount) it booted in 61 s and answered. So -icount
	// only up to 8 L1 CPUs; KTSTR_LAB_L1_ICOUNT=0/1 decides otherwise.
	var extra []string
	icount := l1CPUs <= 8
	if v := os.Getenv("KTSTR_LAB_L1_ICOUNT"); v != "" {
		icount = v == "1"
	}
	if icount {
		extra = []string{"-icount", "shift=0,sleep=off"}
	}
	var l1 *lab.Nested
	for try := 1; try <= 2 && l1 == nil; try++ {
		l1, err = lab.StartNested(ctx, lab.NestedOptions{
			Agent: agent, Shares: []lab.Share{{Tag: "data", HostPath: data, GuestPath: "/data"}},
			BootTimeout: 420 * time.Second, Lifetime: 60 * time.Minute, Console: l1Console(t, dir), CPUs: l1CPUs,
			ExtraArgs: extra,
		})
		if err != nil {
			t.Logf("L1 boot attempt %d failed: %v", try, err)
		}
	}
	if l1 == nil {
		t.Fatalf("nested lab: L1 did not boot twice in a row: %v", err)
	}
	t.Cleanup(func() { l1.Close() })
	t.Logf("L1 up in %v", l1.BootTime.Round(time.Millisecond))

	return l1
}

// l1CPUsFor is L1's vCPU count for a series of L2 shapes: one per vCPU of
// the largest, or KTSTR_LAB_L1_CPUS. With fewer L1 CPUs than L2 vCPUs, L2
// hangs: under QEMU's TCG nested SVM L1 rarely gets its timer interrupt
// while L2 runs, so an L2 vCPU that spins with interrupts off on a lock
// held by a descheduled vCPU thread keeps L1's only CPU (seen with 8 L2
// vCPUs: two vCPUs in queued_spin_lock_slowpath, IF=0, for minutes; the
// lock holder never ran again). An L1 CPU per L2 vCPU lets QEMU's
// round-robin run every vCPU thread.
func l1CPUsFor(t *testing.T, shapes []string) int {
	if s := os.Getenv("KTSTR_LAB_L1_CPUS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KTSTR_LAB_L1_CPUS=%q: want a positive count", s)
		}
		return n
	}
	n := 1
	for _, shape := range shapes {
		topo, err := topology.FromText(shape)
		if err != nil {
			t.Fatal(err)
		}
		n = max(n, len(topo.CPUs))
	}
	return n
}

// l2Append is the extra L2 kernel command line of the lab's topology
// boots: KTSTR_LAB_L2_APPEND (experiments), else nothing. Not
// lab.L2Cmdline's idle=poll: with an L1 CPU per L2 vCPU, L1 does not idle
// while L2 boots, and polling idle vCPUs would take QEMU's round-robin
// slices from the busy ones (an 8-vCPU L2 booted in 2 min without it).
func l2Append() string {
	return os.Getenv("KTSTR_LAB_L2_APPEND")
}

func lastLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return prefix + "?"
}

// TestBootTimeLab boots the fixture kernel to init under ktstr-boot in the
// nested lab for 1, 4, 16 and 64 vCPUs in one package, and 16 vCPUs as 16
// packages (one socket per vCPU, as NUMA nodes) and as 4 LLCs in one
// package, printing the guest's uptime at init and ktstr-boot's wall time
// as measured inside L1 (virtual time under -icount) and on the host.
// Figures only: it asserts that each boot reached init. Opt-in with
// KTSTR_LAB_BENCH=1 (minutes of TCG).
func TestBootTimeLab(t *testing.T) {
	if os.Getenv("KTSTR_LAB_BENCH") != "1" {
		t.Skip("SKIP: the nested boot-time benchmark takes minutes; set KTSTR_LAB_BENCH=1 to run it")
	}
	ctx := context.Background()
	shapes := []string{"1n1l1c1t", "1n1l4c1t", "1n1l16c1t", "1n4l4c1t", "16n16l1c1t", "1n1l64c1t"}
	if s := os.Getenv("KTSTR_LAB_BENCH_SHAPES"); s != "" {
		shapes = strings.Fields(s)
	}
	l1 := startTopologyLab(t, l1CPUsFor(t, shapes))
	for _, shape := range shapes {
		cmd := fmt.Sprintf(`s=$(cut -d' ' -f1 /proc/uptime); /data/ktstr-boot --kernel /data/bzImage --initramfs /data/probe.cpio --topology %s --memory 1G --timeout 900s --control-fifo none --console /tmp/b.txt >/dev/null -- ktopo.quick; rc=$?; e=$(cut -d' ' -f1 /proc/uptime); echo "l1_wall=$(echo "$e $s" | awk '{print $1-$2}') rc=$rc"; grep KTOPO /tmp/b.txt`, shape)
		start := time.Now()
		r, err := l1.Run(ctx, cmd, 1000*time.Second)
		if err != nil {
			t.Fatalf("%s: lab failed: %v", shape, err)
		}
		out := string(r.Stdout)
		up := ""
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "KTOPO uptime "); i >= 0 {
				up = strings.TrimSpace(l[i+len("KTOPO uptime "):])
			}
		}
		fmt.Fprintf(os.Stderr, "boot-time lab: %-11s guest_uptime_at_init=%ss %s host_wall=%v\n", shape, up, lastLine(out, "l1_wall="), time.Since(start).Round(time.Millisecond))
		if up == "" {
			t.Errorf("%s: the guest did not reach init:\n%s", shape, out)
		}
	}
}
