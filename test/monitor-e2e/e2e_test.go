package monitore2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/lab"
	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

type env struct {
	kernel, vmlinux, qmap, monitor, initrd string
	startCPU                               time.Duration // baseline: ktstr-monitor's CPU time on an empty stream
}

func need(t *testing.T) *env {
	t.Helper()
	if os.Getenv("KTSTR_E2E") != "1" {
		t.Skip("SKIP: KTSTR_E2E is not 1: QEMU end-to-end runs of ktstr-monitor are off (test/e2e.sh turns them on)")
	}
	e := &env{kernel: testenv.Kernel(t), vmlinux: testenv.Vmlinux(t), qmap: testenv.Scheduler(t, "scx_qmap")}
	if m := lab.Missing(); m != "" {
		t.Skipf("SKIP (lab fixture missing): %s", m)
	}
	for _, tool := range []string{"ldd", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not found", tool)
		}
	}
	dir := t.TempDir()
	e.monitor = testenv.Tool(t, "ktstr-monitor")
	e.initrd = initramfs(t, dir, e.qmap)
	// Baseline for the overhead figure: the same binary loading the same
	// vmlinux (symbols, BTF, config) on an empty stream, no sampling.
	// An empty stream is "no verdict" (exit 3), never OK.
	b := exec.Command(e.monitor, "--vmlinux", e.vmlinux, os.DevNull)
	if out, err := b.CombinedOutput(); b.ProcessState == nil || b.ProcessState.ExitCode() != 3 || !bytes.Contains(out, []byte("NO VERDICT")) {
		t.Fatalf("ktstr-monitor on an empty stream: %v, want exit 3 and NO VERDICT\n%s", err, out)
	}
	e.startCPU = b.ProcessState.UserTime() + b.ProcessState.SystemTime()
	return e
}

func TestMain(m *testing.M) { testenv.Main(m) }

func build(t *testing.T, out, pkg string) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// initramfs packs the test init and scx_qmap with the shared libraries it
// needs (lab.Archive.FileWithLibs).
func initramfs(t *testing.T, dir, qmap string) string {
	initBin := filepath.Join(dir, "init")
	build(t, initBin, "github.com/ktstr-go/ktstr/test/monitor-e2e/init")
	a := lab.NewArchive()
	a.Dir("/dev", 0o755)
	if err := a.File("/init", initBin); err != nil {
		t.Fatal(err)
	}
	if err := a.FileWithLibs("/scx_qmap", qmap); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "initrd.cpio")
	if err := a.WriteFile(blob); err != nil {
		t.Fatal(err)
	}
	return blob
}

type runResult struct {
	monitorRC int
	samples   []wire.MonitorSample
	frames    []wire.Type
	report    string
	console   string
	cpuTime   time.Duration // ktstr-monitor's user+system time
	wall      time.Duration
}

// boot runs one 2-vCPU, 512 MiB guest in the lab's reference mode (plain
// QEMU TCG, microvm) with RAM in a shared file, and ktstr-monitor reading
// the guest's stream live from a pipe. stopOn, when it appears in the
// monitor's report, ends the guest early (2 s later); limit bounds it.
func boot(t *testing.T, e *env, mode string, secs int, stopOn string, limit time.Duration, monitorArgs ...string) *runResult {
	dir := t.TempDir()
	shm := "/dev/shm"
	if st, err := os.Stat(shm); err != nil || !st.IsDir() {
		shm = dir
	}
	ram := filepath.Join(shm, fmt.Sprintf("ktstr-monitor-e2e-%d-%s.ram", os.Getpid(), mode))
	defer os.Remove(ram)
	// The file must exist at its full size before ktstr-monitor maps it;
	// QEMU then uses it as it is.
	if err := os.WriteFile(ram, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ram, 512<<20); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	reportPath := filepath.Join(dir, "report")
	rep, _ := os.Create(reportPath)
	var out bytes.Buffer
	m := exec.Command(e.monitor, append([]string{"--guest-mem", ram, "--vmlinux", e.vmlinux, "--tee", "--emit", "--json"}, monitorArgs...)...)
	m.Stdin, m.Stdout, m.Stderr = pr, &out, rep
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if stopOn != "" {
		go func() {
			for ctx.Err() == nil {
				if b, _ := os.ReadFile(reportPath); bytes.Contains(b, []byte(stopOn)) {
					time.Sleep(2 * time.Second)
					cancel()
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	qr, err := lab.Reference(ctx, lab.ReferenceOptions{
		Kernel: e.kernel, Initramfs: e.initrd, CPUs: 2, MemoryMiB: 512, MemFile: ram,
		Cmdline: fmt.Sprintf("ktstr.mode=%s ktstr.secs=%d", mode, secs),
		Timeout: limit, Stream: pw,
	})
	pw.Close()
	if err != nil {
		m.Process.Kill()
		t.Fatalf("reference boot: %v", err)
	}
	lab.KeepOnFailure(t, qr)
	mdone := make(chan error, 1)
	go func() { mdone <- m.Wait() }()
	var merr error
	select {
	case merr = <-mdone:
	case <-time.After(20 * time.Second):
		m.Process.Kill()
		t.Fatal("ktstr-monitor did not end after QEMU exited")
	}
	rep.Close()
	r := &runResult{wall: qr.Wall, console: string(qr.Console)}
	if qr.TimedOut {
		t.Errorf("%s: QEMU hit the %v limit", mode, limit)
	}
	r.monitorRC = m.ProcessState.ExitCode()
	r.cpuTime = m.ProcessState.UserTime() + m.ProcessState.SystemTime()
	b, _ := os.ReadFile(reportPath)
	r.report = string(b)
	var ee *exec.ExitError
	if merr != nil && !errors.As(merr, &ee) {
		t.Fatalf("ktstr-monitor: %v", merr)
	}
	d := wire.NewDecoder(&out)
	for {
		f, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("monitor output: %v", err)
		}
		r.frames = append(r.frames, f.Type)
		if f.Type == wire.TypeMonitorSample {
			msg, err := wire.Unmarshal(f.Type, f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			r.samples = append(r.samples, msg.(wire.MonitorSample))
		}
	}
	sampling := r.cpuTime - e.startCPU
	t.Logf("%s: wall %v, %d samples; ktstr-monitor CPU %v in all, %v of it the empty-stream baseline (vmlinux load); the rest, %v, is %.2f%% of one CPU over the run (budget 2%%)",
		mode, r.wall.Round(time.Millisecond), len(r.samples), r.cpuTime, e.startCPU, sampling,
		100*sampling.Seconds()/r.wall.Seconds())
	return r
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func TestMonitorQEMU(t *testing.T) {
	e := need(t)
	t.Run("spin", func(t *testing.T) {
		r := boot(t, e, "spin", 6, "", 150*time.Second)
		if r.monitorRC != 0 {
			t.Errorf("ktstr-monitor exit %d, want 0\n%s", r.monitorRC, r.report)
		}
		if len(r.samples) < 30 {
			t.Fatalf("%d samples\nreport:\n%s\nconsole:\n%s", len(r.samples), r.report, tail(r.console, 20))
		}
		// Every CPU's runqueue clock advances, and under the spinners
		// each CPU holds at least 2 runnable tasks at some sample.
		first := map[int]uint64{}
		last := map[int]uint64{}
		maxNr := map[int]uint32{}
		for _, s := range r.samples {
			for _, c := range s.CPUs {
				if c.ClockNS == 0 {
					continue
				}
				if _, ok := first[c.CPU]; !ok {
					first[c.CPU] = c.ClockNS
				}
				last[c.CPU] = c.ClockNS
				maxNr[c.CPU] = max(maxNr[c.CPU], c.NrRunning)
			}
		}
		for cpu := range 2 {
			if last[cpu] <= first[cpu] {
				t.Errorf("cpu%d rq clock did not advance: %d -> %d", cpu, first[cpu], last[cpu])
			}
			if maxNr[cpu] < 2 {
				t.Errorf("cpu%d nr_running peaked at %d under two spinners", cpu, maxNr[cpu])
			}
			t.Logf("cpu%d: rq clock %.3fs -> %.3fs, max nr_running %d", cpu, float64(first[cpu])/1e9, float64(last[cpu])/1e9, maxNr[cpu])
		}
		// The guest's own frames came through the tee.
		want := map[wire.Type]bool{wire.TypeGuestReady: false, wire.TypePhase: false, wire.TypeGuestExit: false}
		for _, ty := range r.frames {
			if _, ok := want[ty]; ok {
				want[ty] = true
			}
		}
		for ty, seen := range want {
			if !seen {
				t.Errorf("no %s frame in the tee'd stream", ty)
			}
		}
	})
	t.Run("qmap_stall", func(t *testing.T) {
		r := boot(t, e, "qmap", 12, `"kind":"sched_exit"`, 150*time.Second)
		if r.monitorRC != 1 {
			t.Errorf("ktstr-monitor exit %d, want 1 (violations)\nreport:\n%s\nconsole:\n%s", r.monitorRC, r.report, tail(r.console, 30))
		}
		if !strings.Contains(r.report, `"kind":"sched_exit"`) && !strings.Contains(r.report, `"kind":"cpu_stall"`) {
			t.Errorf("no sched_exit or cpu_stall violation:\n%s", r.report)
		}
		enabled := false
		prev := ""
		for _, s := range r.samples {
			if st := fmt.Sprintf("%s/%s/%d", s.ScxState, s.ScxExit, s.ScxExitKind); st != prev {
				t.Logf("sample %d at %.1fs: sched_ext %s", s.Seq, float64(s.ElapsedNS)/1e9, st)
				prev = st
			}
			if s.ScxState == "enabled" && s.ScxOps == "qmap" {
				enabled = true
			}
		}
		if !enabled {
			t.Error("no sample saw scx_qmap enabled")
		}
		t.Logf("report:\n%s", r.report)
	})
	// --watchdog-timeout: the monitor writes 2 s into the guest kernel's
	// scx_watchdog_timeout (scx_qmap asks for 5 s); the samples read it
	// back, and the kernel's own watchdog fires on the 2 s limit.
	t.Run("qmap_watchdog_override", func(t *testing.T) {
		r := boot(t, e, "qmap", 12, `"kind":"sched_exit"`, 150*time.Second, "--watchdog-timeout", "2s")
		if !strings.Contains(r.report, "sched_ext watchdog timeout set to 2s") {
			t.Errorf("the monitor did not say it set the timeout:\n%s", r.report)
		}
		seen := false
		for _, s := range r.samples {
			if s.ScxState == "enabled" && s.WatchdogTimeout == 2e9 {
				seen = true
			}
		}
		if !seen {
			t.Error("no sample read back a 2 s watchdog timeout")
		}
		m := regexp.MustCompile(`failed to run for (\d+)\.(\d+)s|failed to check in for (\d+)\.(\d+)s`).FindStringSubmatch(r.console + r.report)
		if m == nil {
			t.Fatalf("no sched_ext watchdog message on the console:\n%s", tail(r.console, 30))
		}
		t.Logf("kernel: %s (scx_qmap's own timeout is 5 s)", m[0])
		secs := m[1] + m[3]
		if secs != "2" && secs != "3" && secs != "4" {
			t.Errorf("the kernel's watchdog fired after %ss; with the 2 s override it must fire before scx_qmap's 5 s", secs)
		}
	})
}
