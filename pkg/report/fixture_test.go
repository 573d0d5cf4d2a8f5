package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/decode"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/runs from the fixture specs")

// streamSpec describes a synthetic but complete run stream, written with
// pkg/wire's Encoder as the guest init and the VMM write theirs.
type streamSpec struct {
	failCheck  bool    // a check fails (guest exits 1)
	iterations uint64  // per worker and step
	wakeP99NS  uint64  // 0: no wake-latency fields at all
	migrations uint64  // per worker and step
	gapNS      uint64  // per worker
	spread     float64 // per cgroup
	samples    int     // monitor samples
	cpus       int
	wallNS     uint64
	skewCPU    int // a CPU whose runqueue runs deeper
	// bpf: the verified instructions of the scheduler's programs, sent
	// as a bpf_prog_stats frame (nil: none).
	bpf []uint32
}

func (s streamSpec) withDefaults() streamSpec {
	if s.iterations == 0 {
		s.iterations = 50000
	}
	if s.samples == 0 {
		s.samples = 20
	}
	if s.cpus == 0 {
		s.cpus = 4
	}
	if s.wallNS == 0 {
		s.wallNS = 12e9
	}
	if s.gapNS == 0 {
		s.gapNS = 3e6
	}
	if s.migrations == 0 {
		s.migrations = 40
	}
	if s.spread == 0 {
		s.spread = 4
	}
	return s
}

// buildStream writes s as a frame stream. The identity in guest_ready comes
// from the variant name sched/scenario/preset.
func buildStream(t testing.TB, variant string, s streamSpec) []byte {
	t.Helper()
	s = s.withDefaults()
	parts := strings.Split(variant, "/")
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	var b bytes.Buffer
	var gt, ht uint64 = 1e9, 1e6
	guest := wire.NewEncoder(&b, wire.WithClock(func() uint64 { gt += 1e6; return gt }))
	host := wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost), wire.WithClock(func() uint64 { ht += 1e6; return ht }))
	enc := func(e *wire.Encoder, m wire.Message) {
		if err := e.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	enc(host, wire.VMStart{VMM: "qemu", PID: 4242, VCPUs: s.cpus, Topology: parts[2], MemorySize: 512 << 20})
	enc(guest, wire.GuestReady{Kernel: "6.12.0-ktstr", CPUs: s.cpus, MemoryKiB: 500000, InitVersion: "test",
		Scheduler: parts[0], Scenario: parts[1], Topology: parts[2]})
	enc(guest, wire.Phase{Phase: wire.PhaseSchedulerAttached})
	if s.bpf != nil {
		st := wire.BPFProgStats{Scheduler: parts[0], SelectedBy: "fd", Programs: []wire.BPFProg{}}
		for i, n := range s.bpf {
			st.Programs = append(st.Programs, wire.BPFProg{ID: uint32(40 + i), Name: fmt.Sprintf("%s_op%d", strings.TrimPrefix(parts[0], "scx_"), i),
				Type: "StructOps", VerifiedInsns: n, LoadTimeNS: 1e9 + uint64(i)*1e6, LoadOffsetNS: -int64(5e6) + int64(i)*1e6, JitedSize: 8 * n})
		}
		enc(guest, st)
	}
	enc(guest, wire.Phase{Phase: wire.PhaseScenarioStart, Detail: parts[1]})
	sample := 0
	monitor := func(n int) {
		for ; n > 0; n-- {
			ms := wire.MonitorSample{Seq: uint64(sample), ElapsedNS: uint64(sample) * 500e6, ScxState: "enabled", ScxOps: parts[0]}
			for c := 0; c < s.cpus; c++ {
				nr := uint32((sample + c) % 3)
				if c == s.skewCPU {
					nr += 3
				}
				ms.CPUs = append(ms.CPUs, wire.CPUSample{CPU: c, NrRunning: nr, ClockNS: uint64(sample) * 500e6, LocalDSQ: nr / 2})
			}
			enc(host, ms)
			sample++
		}
	}
	for step := 0; step < 2; step++ {
		monitor(s.samples / 2)
		for cg := 0; cg < 2; cg++ {
			name := fmt.Sprintf("cg%d", cg)
			for wk := 0; wk < 2; wk++ {
				w := wire.WorkerMetrics{Step: step, Cgroup: name, Worker: 2*cg + wk, PID: 300 + 2*cg + wk, Work: "spin",
					Iterations: s.iterations + uint64(wk*100), CPUTimeNS: uint64(2e9) + uint64(cg)*5e8 + uint64(wk)*1e8, WallNS: 4e9,
					MaxGapNS: s.gapNS + uint64(wk)*1e5, MaxGapCPU: wk, CPUs: []int{wk, wk + 1}, Migrations: s.migrations}
				if s.wakeP99NS > 0 {
					w.WakeLatP50NS, w.WakeLatP99NS, w.WakeLatMaxNS, w.WakeSamples = s.wakeP99NS/4, s.wakeP99NS+uint64(cg)*1000, 2*s.wakeP99NS, 1000
				}
				enc(guest, w)
			}
			c := wire.CgroupMetrics{Step: step, Cgroup: name, Workers: 2, Cpuset: []int{0, 1, 2, 3}, Weight: 100, CPUsUsed: 2,
				Iterations: 2*s.iterations + 100, CPUTimeNS: 4e9, SpreadPct: s.spread, MaxGapNS: s.gapNS + 1e5, Migrations: 2 * s.migrations}
			if s.wakeP99NS > 0 {
				c.WakeLatP99NS = s.wakeP99NS + uint64(cg)*1000
			}
			enc(guest, c)
		}
	}
	pass := !s.failCheck
	observed := 3.0
	if s.failCheck {
		observed = 2500
	}
	enc(guest, wire.CheckResult{Name: "starvation", Pass: pass, Threshold: 2000, Observed: observed, Unit: "ms", Step: 1})
	enc(guest, wire.CheckResult{Name: "fairness", Pass: true, Threshold: 20, Observed: s.spread, Unit: "%", Step: 1})
	enc(guest, wire.Phase{Phase: wire.PhaseScenarioEnd, Detail: parts[1]})
	code := int32(0)
	if s.failCheck {
		code = 1
	}
	enc(guest, wire.GuestExit{Code: code})
	enc(host, wire.VMExit{Reason: "guest_exit", ExitCode: int(code), WallNS: s.wallNS, VCPUs: s.cpus, EndedBy: "poweroff"})
	return b.Bytes()
}

// variantSpec is one variant directory of a fixture run.
type variantSpec struct {
	name        string
	stream      *streamSpec // nil: no stream.ktstr
	truncate    int         // cut this many bytes off the stream's end
	metaVerdict string      // "": the stream's own verdict word; "-": no meta.json
	metaRaw     string      // meta.json's bytes verbatim (corrupt ones)
	metaReason  string
	console     string
	repro       bool // an auto-repro stream (reproStream) and its timeline, as ktstr-gauntlet records them
}

func writeFixtureRun(t testing.TB, dir string, listed []string, vs []variantSpec) {
	t.Helper()
	ended := fixtureTime("08:10:00")
	rec := runrecord.Run{Suite: "fixture.suite", SuiteSHA256: strings.Repeat("ab", 32), Started: fixtureTime("08:00:00"),
		Ended: &ended, Host: "fixture-host", KtstrVersion: "test", Engine: "make", Variants: listed}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, runrecord.RunFile), rec)
	for _, v := range vs {
		vdir := filepath.Join(dir, filepath.FromSlash(v.name))
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			t.Fatal(err)
		}
		word := runrecord.NoVerdict
		if v.stream != nil {
			st := buildStream(t, v.name, *v.stream)
			if v.truncate > 0 {
				st = st[:len(st)-v.truncate]
			} else if v.stream.failCheck {
				word = runrecord.Fail
			} else {
				word = runrecord.Pass
			}
			if err := os.WriteFile(filepath.Join(vdir, runrecord.StreamFile), st, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if v.metaVerdict != "" {
			word = v.metaVerdict
		}
		parts := strings.SplitN(v.name, "/", 4)
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		wall := 0.0
		if v.stream != nil {
			wall = float64(v.stream.withDefaults().wallNS)/1e9 + 3
		}
		switch {
		case v.metaRaw != "":
			if err := os.WriteFile(filepath.Join(vdir, runrecord.MetaFile), []byte(v.metaRaw), 0o644); err != nil {
				t.Fatal(err)
			}
		case word != "-":
			writeJSON(t, filepath.Join(vdir, runrecord.MetaFile), runrecord.Meta{Variant: v.name, Scheduler: parts[0], SchedulerArgs: []string{"--slice-us", "5000"},
				SchedulerSHA256: strings.Repeat("cd", 32), Scenario: parts[1], Preset: parts[2], Topology: "1n1l4c1t",
				Kernel: "linux-6.12-ktstr", KernelVersion: "6.12.0-ktstr", KernelSHA256: strings.Repeat("ef", 32), Rep: 1,
				KtstrVersion: "test", Host: "fixture-host", Started: fixtureTime("08:00:01"), Ended: fixtureTime("08:00:16"),
				WallS: wall, ExitCode: map[string]int{runrecord.Pass: 0, runrecord.Fail: 1, runrecord.NoVerdict: 3, runrecord.Error: 2}[word],
				Verdict: word, Reason: v.metaReason})
		}
		if v.console != "" {
			if err := os.WriteFile(filepath.Join(vdir, runrecord.ConsoleFile), []byte(v.console), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if v.repro {
			st := reproStream(t, parts[0])
			var tl bytes.Buffer
			if err := decode.Timeline(bytes.NewReader(st), &tl, decode.TimelineOptions{Events: decode.DefaultTimelineEvents}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vdir, runrecord.ReproStreamFile), st, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vdir, runrecord.ReproTimelineFile), tl.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fixtureTime is a time on the fixtures' day, in UTC.
func fixtureTime(hms string) time.Time {
	t, err := time.Parse(time.RFC3339, "2026-12-06T"+hms+"Z")
	if err != nil {
		panic(err)
	}
	return t
}

// reproStream is an auto-repro boot's stream as the guest sends it: what
// was attached, events on the scheduling path of a task that stalls, the
// trigger with its stack, the scheduler's exit and the recorder's counts.
func reproStream(t testing.TB, sched string) []byte {
	t.Helper()
	var b bytes.Buffer
	var gt uint64 = 1e9
	guest := wire.NewEncoder(&b, wire.WithClock(func() uint64 { gt += 1e6; return gt }))
	ip := func(v int) *int { return &v }
	u := func(v uint64) *uint64 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	kind, code := 1026, int64(0)
	ops := strings.TrimPrefix(sched, "scx_")
	progs := []string{ops + "_enqueue", ops + "_dispatch"}
	attached := []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}, {Func: "enqueue_task_scx", Kind: "kprobe"},
		{Func: "dispatch_enqueue", Kind: "kprobe"}, {Func: "set_next_task_scx", Kind: "kprobe"}}
	msgs := []wire.Message{
		wire.GuestReady{Kernel: "6.12.0-ktstr", CPUs: 4, MemoryKiB: 500000, InitVersion: "test", Scheduler: sched},
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: attached, Programs: progs},
		wire.ProbeEvent{TimeNS: 2_000_000_000, CPU: 1, PID: 73, Comm: "spin", Func: "enqueue_task_scx", TaskPID: ip(73), TaskComm: "spin",
			EnqFlags: u(1), CPUMask: u(0xf), Slice: u(20e6), LastSeen: true},
		wire.ProbeEvent{TimeNS: 2_000_100_000, CPU: 1, PID: 73, Comm: "spin", Func: "dispatch_enqueue", TaskPID: ip(73), TaskComm: "spin",
			DSQ: u(1<<63 | 1), DSQNr: u32(3), EnqFlags: u(1)},
		wire.ProbeEvent{TimeNS: 6_900_000_000, CPU: 0, PID: 80, Comm: "spin", Func: "set_next_task_scx", TaskPID: ip(80), TaskComm: "spin",
			RqCPU: ip(0), RqNr: u32(2)},
		wire.ProbeEvent{TimeNS: 7_000_000_000, CPU: 0, PID: 31, Comm: "kworker/0:2", Func: "scx_ops_exit_kind", Trigger: true,
			ExitKind: &kind, ExitCode: &code, Text: "%s[%d] failed to run for %u.%03us",
			Stack: []string{"scx_ops_exit_kind+0x5", "scx_watchdog_workfn+0x12a", "process_one_work+0x17e"}},
		wire.SchedExit{Kind: 1026, KindName: "error_stall", Reason: "runnable task stall", Message: "spin[73] failed to run for 5.000s"},
		wire.ProbeMeta{Stage: wire.ProbeStageDone, Attached: attached, Programs: progs,
			Triggered: true, Events: 1200, Sent: 4},
	}
	for _, m := range msgs {
		if err := guest.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

const consoleText = "[    0.000000] Linux version 6.12.0-ktstr\n[    1.200000] sched_ext: BPF scheduler \"simple\" enabled\nktstr-init: scenario done\n"

// fixtureRuns are the run directories under testdata/runs that the tests,
// the man page's examples and examples/pipelines.sh use.
//
//	pass:   three variants, all pass (one without wake-latency fields)
//	slower: the same three; one slower with worse wake latency, one failing
//	        (with an auto-repro stream)
//	mixed:  every way a variant can be broken; the failing one has BPF
//	        verifier statistics and an auto-repro stream
func fixtureRuns() map[string]func(t testing.TB, dir string) {
	simpleBPF := []uint32{1200, 3400, 800}
	three := []string{"scx_simple/steady/tiny-1llc", "scx_simple/steady/numa2-4llc", "scx_simple/mixed/tiny-1llc"}
	return map[string]func(t testing.TB, dir string){
		"pass": func(t testing.TB, dir string) {
			writeFixtureRun(t, dir, three, []variantSpec{
				{name: three[0], stream: &streamSpec{wakeP99NS: 80e3, bpf: simpleBPF}, console: consoleText},
				{name: three[1], stream: &streamSpec{wakeP99NS: 90e3, cpus: 8, skewCPU: 5, bpf: simpleBPF}, console: consoleText},
				{name: three[2], stream: &streamSpec{bpf: simpleBPF}, console: consoleText},
			})
		},
		"slower": func(t testing.TB, dir string) {
			writeFixtureRun(t, dir, three, []variantSpec{
				{name: three[0], stream: &streamSpec{wakeP99NS: 400e3, iterations: 20000, bpf: simpleBPF}, console: consoleText},
				{name: three[1], stream: &streamSpec{wakeP99NS: 91e3, cpus: 8, skewCPU: 5, bpf: simpleBPF}, console: consoleText},
				{name: three[2], stream: &streamSpec{failCheck: true, bpf: simpleBPF}, console: consoleText + "ktstr-init: check starvation failed\n", repro: true},
			})
		},
		"mixed": func(t testing.TB, dir string) {
			writeFixtureRun(t, dir, []string{"eevdf/steady/tiny-1llc", "scx_qmap/steady/tiny-1llc", "scx_qmap/mixed/tiny-1llc",
				"scx_qmap/steady/numa2-4llc", "scx_qmap/burst/tiny-1llc", "scx_lavd/steady/tiny-1llc"}, []variantSpec{
				{name: "eevdf/steady/tiny-1llc", stream: &streamSpec{wakeP99NS: 50e3}, console: consoleText},
				{name: "scx_qmap/steady/tiny-1llc", stream: &streamSpec{failCheck: true, bpf: []uint32{2100, 9800, 450, 17}}, console: "\x1b[31mred\x1b[0m <b>not bold</b> & \x00\n", repro: true},
				{name: "scx_qmap/mixed/tiny-1llc", metaVerdict: runrecord.Error, metaReason: "ktstr-run: scheduler binary not found"},
				{name: "scx_qmap/steady/numa2-4llc", stream: &streamSpec{}, truncate: 10},
				{name: "scx_qmap/burst/tiny-1llc", stream: &streamSpec{}, metaVerdict: runrecord.Fail, metaReason: "ktstr-run exited 1"},
				{name: "scx_lavd/steady/tiny-1llc/rep2", stream: &streamSpec{}, metaRaw: "{\"variant\": \"scx_lavd/ste"},
			})
		},
	}
}

// TestFixtureRuns checks that testdata/runs is what the specs write (-update
// rewrites it).
func TestFixtureRuns(t *testing.T) {
	for name, build := range fixtureRuns() {
		dir := filepath.Join("testdata", "runs", name)
		if *update {
			os.RemoveAll(dir)
			build(t, dir)
			continue
		}
		tmp := t.TempDir()
		build(t, tmp)
		want := treeOf(t, tmp)
		got := treeOf(t, dir)
		if len(got) != len(want) {
			t.Errorf("%s: %d files, want %d (go test ./pkg/report -run TestFixtureRuns -update)", dir, len(got), len(want))
		}
		for p, b := range want {
			if !bytes.Equal(got[p], b) {
				t.Errorf("%s: %s differs from its spec (go test ./pkg/report -run TestFixtureRuns -update)", dir, p)
			}
		}
	}
}

func treeOf(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
