package guest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/qemuvmm"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/ktstr-go/ktstr/pkg/verdict"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// The detection matrix: real faults of the fixture schedulers, run with
// the catalog's default scenario and every default (no ktstr.hold, no
// lowered threshold), must each end with a failing run verdict that names
// the fault; EEVDF and scx_simple must pass. The verdict is the one
// ktstr-decode --verdict gives (pkg/verdict).
//
// The VMM is ktstr-boot's QEMU path (pkg/qemuvmm, what ktstr-boot --vmm
// qemu runs): the stream judged is the product's own, vm_start and vm_exit
// included.

// matrixRun is one judged boot.
type matrixRun struct {
	stream, console []byte
	wall            time.Duration
}

// matrixBoot boots blob with default settings and returns the run's
// verdict, the run, and how long after scenario_start the first failing
// evidence arrived (0 when none). A boot whose kernel never reached the
// init (a lab flake under TCG) is retried once, as the other e2e tests do.
func matrixBoot(t *testing.T, e e2eEnv, blob string, cmdline string) (verdict.Verdict, *matrixRun, time.Duration) {
	t.Helper()
	topo, err := topology.FromText("1n1l2c1t")
	if err != nil {
		t.Fatal(err)
	}
	var run *matrixRun
	for attempt := 1; ; attempt++ {
		var stream, console, log bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		res, err := qemuvmm.Boot(ctx, qemuvmm.BootConfig{
			Kernel: e.kernel, Initramfs: []string{blob}, Topology: topo, Memory: 512 << 20,
			// e2eCmdline: ktstr.spread_pct=50, as in every QEMU e2e test: under
			// TCG on a loaded host two spinners under EEVDF showed a 29 %
			// CPU-time spread (CI, 2026-12-06); this matrix judges stalls,
			// crashes and deaths, and the fairness arithmetic is unit-tested.
			Cmdline: e2eCmdline + " " + cmdline, Timeout: 60 * time.Second, // rows end in 5-20 s; a hung guest still gets its verdict
			Stream: &stream, Console: &console, Log: &log, ReportNoExit: true,
		})
		cancel()
		if err != nil {
			t.Fatalf("QEMU boot: %v\n%s", err, log.String())
		}
		run = &matrixRun{stream: stream.Bytes(), console: console.Bytes(), wall: res.Wall}
		if guestReady(run.stream) || attempt == bootAttempts {
			break
		}
		t.Logf("LAB FLAKE (attempt %d of %d): the kernel never reached the init (%s); console tail: %s",
			attempt, bootAttempts, res.Summary(), tailString(run.console, 400))
	}
	if dir := os.Getenv("KTSTR_MATRIX_KEEP"); dir != "" {
		// Keep the stream and the console for a look by hand.
		base := fmt.Sprintf("%s/%s-%d", dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), time.Now().UnixNano())
		os.WriteFile(base+".ktstr", run.stream, 0o644)
		os.WriteFile(base+".console", run.console, 0o644)
		t.Logf("kept %s.ktstr and .console", base)
	}
	v, err := verdict.JudgeStream(bytes.NewReader(run.stream))
	if err != nil {
		t.Fatal(err)
	}
	return v, run, firstFailure(run.stream)
}

// guestReady reports whether the guest's init sent its guest_ready frame.
func guestReady(stream []byte) bool {
	d := wire.NewDecoder(bytes.NewReader(stream))
	for {
		f, err := d.Next()
		if err != nil {
			return false
		}
		if f.Type == wire.TypeGuestReady && f.Flags&wire.FlagHost == 0 {
			return true
		}
	}
}

// firstFailure is the guest time from scenario_start (or, without one,
// the first frame) to the first failed check or scheduler error exit.
func firstFailure(stream []byte) time.Duration {
	d := wire.NewDecoder(bytes.NewReader(stream))
	var start uint64
	for {
		f, err := d.Next()
		if err != nil {
			return 0
		}
		if f.Flags&wire.FlagHost != 0 {
			continue // host clock, not the guest's
		}
		if start == 0 {
			start = f.TimeNS
		}
		m, err := wire.Unmarshal(f.Type, f.Payload)
		if err != nil {
			continue
		}
		switch v := m.(type) {
		case wire.Phase:
			if v.Phase == wire.PhaseScenarioStart {
				start = f.TimeNS
			}
		case wire.CheckResult:
			if !v.Pass {
				return time.Duration(f.TimeNS - start)
			}
		case wire.SchedExit:
			if v.Kind >= 1024 {
				return time.Duration(f.TimeNS - start)
			}
		}
	}
}

// TestDetectionMatrix: each fault ends with a failing verdict that names
// it; the good runs pass. One boot per row (10-30 s each under TCG).
func TestDetectionMatrix(t *testing.T) {
	e := needE2E(t)
	qmap := e.scheduler(t, "scx_qmap")
	simple := e.scheduler(t, "scx_simple")
	rows := []struct {
		name    string
		args    []string // ktstr-mkinitramfs arguments
		cmdline string
		want    verdict.Result
		reason  []string // the verdict's reasons must include one containing each
	}{
		{"EEVDF baseline", nil, "", verdict.Pass, nil},
		{"scx_simple", []string{"--scheduler", simple}, "", verdict.Pass, nil},
		{"scx_qmap -e 100: scx_bpf_error", []string{"--scheduler", qmap, "--", "-e", "100"}, "", verdict.Fail, []string{"error_bpf"}},
		{"scx_qmap -t 10: stalled user threads", []string{"--scheduler", qmap, "--", "-t", "10"}, "", verdict.Fail, []string{"runnable on cpu"}},
		{"scx_qmap -T 10: stalled kernel threads", []string{"--scheduler", qmap, "--", "-T", "10"}, "", verdict.Fail, []string{"check task_stall failed"}},
		{"scx_qmap -l 200: dispatch loop", []string{"--scheduler", qmap, "--", "-l", "200"}, "", verdict.Fail, nil},
		// The combination stalls so much that in 1 of 4 runs the task-stall
		// scan itself was held up (cause not found) and the kernel's
		// watchdog caught it first: the row asks for the failure only.
		{"scx_qmap -t 5 -T 5", []string{"--scheduler", qmap, "--", "-t", "5", "-T", "5"}, "", verdict.Fail, nil},
		{"scx_simple SIGKILLed mid-run", []string{"--scheduler", simple, "--busybox", "/bin/busybox", "--scenario", "testdata/kill-scheduler.json"}, "", verdict.Fail, []string{"guest exit code 4"}},
	}
	if only := os.Getenv("KTSTR_MATRIX_ONLY"); only != "" {
		var keep = rows[:0]
		for _, r := range rows {
			if strings.Contains(r.name, only) {
				keep = append(keep, r)
			}
		}
		rows = keep
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| fault | verdict | reason | guest time from scenario start to first failure |\n|---|---|---|---|\n")
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			blob := e.initramfs(t, r.args...)
			v, res, after := matrixBoot(t, e, blob, r.cmdline)
			fmt.Fprintf(&table, "| %s | %s | %s | %s |\n", r.name, v.Result.Word(), v.Reason, after.Round(10*time.Millisecond))
			if v.Result != r.want {
				t.Fatalf("verdict %s (%q), want %s\nreasons: %q\nconsole tail:\n%s", v.Result, v.Reason, r.want, v.Reasons, tailString(res.console, 2500))
			}
			all := strings.Join(v.Reasons, "\n")
			for _, want := range r.reason {
				if !strings.Contains(all, want) {
					t.Errorf("reasons %q lack %q", v.Reasons, want)
				}
			}
			t.Logf("%s: %s (first failure %s after scenario start; wall %s)", r.name, strings.TrimSpace(string(v.AppendText(nil))), after, res.wall.Round(100*time.Millisecond))
		})
	}
	t.Logf("detection matrix:\n%s", table.String())
}

// TestNoFalsePositives: EEVDF and scx_simple pass every time. The short
// series runs in make test (2 each); KTSTR_FP_RUNS=20 runs the long one.
func TestNoFalsePositives(t *testing.T) {
	e := needE2E(t)
	n := 2
	if s := os.Getenv("KTSTR_FP_RUNS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("KTSTR_FP_RUNS=%q: want a positive count", s)
		}
	}
	simple := e.scheduler(t, "scx_simple")
	for _, c := range []struct {
		name string
		args []string
	}{{"eevdf", nil}, {"scx_simple", []string{"--scheduler", simple}}} {
		blob := e.initramfs(t, c.args...)
		pass := 0
		for i := 0; i < n; i++ {
			v, res, _ := matrixBoot(t, e, blob, "")
			if v.Result != verdict.Pass {
				t.Errorf("%s run %d of %d: %s\nreasons %q\nconsole tail:\n%s", c.name, i+1, n, v.AppendText(nil), v.Reasons, tailString(res.console, 2000))
				continue
			}
			pass++
		}
		t.Logf("%s: %d of %d runs passed", c.name, pass, n)
	}
}
