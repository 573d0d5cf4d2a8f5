package decode

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ and examples/sample.ktstr")

// stepClock is a deterministic clock: start, then +step per frame.
func stepClock(start, step uint64) func() uint64 {
	t := start - step
	return func() uint64 { t += step; return t }
}

// everyTypeMessages is one message of every defined type, in the order a
// run would produce them, guest frames first then host frames.
func everyTypeMessages() (guest, host []wire.Message) {
	code := 0
	sig := 3
	return []wire.Message{
			wire.GuestReady{Kernel: "6.12.0-ktstr", CPUs: 4, MemoryKiB: 512 << 10, InitVersion: "0.1.0", UptimeNS: 2_950_000_000, Cmdline: "console=ttyS0 quiet"},
			wire.KernelSymbols{Symbols: map[string]uint64{"_text": 0xffffffff9a000000, "runqueues": 0x2c140, "scx_root": 0xffffffff9c3a1e80}},
			wire.Phase{Phase: wire.PhaseInitStarted},
			wire.Phase{Phase: wire.PhaseSchedulerAttached, Detail: "scx_simple"},
			wire.BPFProgStats{Scheduler: "scx_simple", SelectedBy: "fd", Programs: []wire.BPFProg{
				{ID: 41, Name: "simple_enqueue", Type: "StructOps", VerifiedInsns: 97, LoadTimeNS: 2_800_000_000, LoadOffsetNS: 120_000_000, JitedSize: 412, XlatedSize: 776, MapIDs: []uint32{12, 13}},
				{ID: 42, Name: "simple_init", Type: "StructOps", VerifiedInsns: 11, LoadTimeNS: 2_800_100_000, LoadOffsetNS: 120_100_000, RunTimeNS: 5_000, RunCount: 1}}},
			wire.Output{Stream: wire.StreamStdout, Program: wire.ProgramScheduler, Data: []byte("local=12 global=3\n")},
			wire.Phase{Phase: wire.PhaseScenarioStart, Detail: "cpuset_grow"},
			wire.Stimulus{Step: 0, Name: "two cgroups", ElapsedMS: 0, HoldMS: 2000, Cgroups: 2, Workers: 4,
				Ops: []wire.StimulusOp{{Op: "add_cgroup", Cgroup: "cg0", Detail: "cpuset=0-1"}, {Op: "add_cgroup", Cgroup: "cg1", Detail: "cpuset=2-3"}}},
			wire.WorkerMetrics{Step: 0, Cgroup: "cg0", Worker: 0, PID: 211, Work: "spin", Iterations: 7615, CPUTimeNS: 1_950_000_000,
				WallNS: 2_000_000_000, MaxGapNS: 3_500_000, MaxGapCPU: 1, CPUs: []int{0, 1}, Migrations: 2, CPUShare: 0.975},
			wire.WorkerMetrics{Step: 0, Cgroup: "cg1", Worker: 1, PID: 214, Work: "wake", Iterations: 900, CPUTimeNS: 40_000_000,
				WallNS: 2_000_000_000, MaxGapNS: 12_000_000, MaxGapCPU: 3, CPUs: []int{2, 3, 5}, Migrations: 40,
				WakeLatP50NS: 8_000, WakeLatP99NS: 95_000, WakeLatMaxNS: 2_100_000, WakeSamples: 900, OffCpuset: []int{5}, ExitCode: &code},
			wire.CgroupMetrics{Step: 0, Cgroup: "cg0", Workers: 2, Cpuset: []int{0, 1}, Weight: 100, CPUsUsed: 2, Iterations: 15230,
				CPUTimeNS: 3_900_000_000, SpreadPct: 5.1, MaxGapNS: 3_500_000_000, Migrations: 4},
			wire.CgroupMetrics{Step: 0, Cgroup: "cg1", Workers: 2, Cpuset: []int{2, 3}, CPUsUsed: 3, Iterations: 1800,
				CPUTimeNS: 80_000_000, SpreadPct: 0.4, MaxGapNS: 12_000_000, Migrations: 40, WakeLatP99NS: 95_000},
			wire.Output{Stream: wire.StreamStderr, Program: wire.ProgramPayloadBase + 1, Data: []byte("tab\there \"quoted\" back\\slash\nsecond line\n")},
			wire.Log{Text: "cgroup cg1: worker 1 used CPU 5 outside cpuset 2-3"},
			wire.CheckResult{Name: "starvation", Pass: true, Threshold: 2000, Observed: 3500, Unit: "ms", Cgroup: "cg0", Step: 0},
			wire.CheckResult{Name: "isolation", Pass: false, Threshold: 0, Observed: 1, Unit: "cpus", Cgroup: "cg1", Step: 0, Detail: "worker 1 ran on CPU 5"},
			wire.Phase{Phase: wire.PhaseScenarioEnd, Detail: "cpuset_grow"},
			wire.SchedExit{Kind: 64, KindName: "unreg", Reason: "unregistered from user space", ExitCode: &code, Signal: ""},
			wire.SchedExit{Kind: 1026, KindName: "error_stall", Reason: "runnable task stall", Message: "kworker/1:2[87] failed to run for 5.2s", Signal: "SIGTERM", ExitCode: &sig},
			wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "scx_ops_exit_kind", Kind: "kprobe"}, {Func: "balance_scx", Kind: "kprobe"}},
				Failed: []wire.ProbeAttach{{Func: "no_such_fn", Kind: "kprobe", Error: "symbol not found"}}},
			probeEvent(),
			wire.GuestExit{Code: 1},
		}, []wire.Message{
			wire.VMStart{VMM: "ktstr-boot", PID: 4242, VCPUs: 4, Topology: "1s2l2c1t", MemoryPath: "/proc/4242/fd/7", MemorySize: 512 << 20,
				Regions: []wire.MemRegion{{GPA: 0, Size: 512 << 20, Offset: 0}}, Kernel: "bzImage", Cmdline: "console=ttyS0 quiet"},
			wire.MonitorSample{Seq: 1, ElapsedNS: 1_000_000_000, ScxState: "enabled", ScxOps: "simple", WatchdogTimeout: 30_000_000_000,
				CPUs: []wire.CPUSample{{CPU: 0, NrRunning: 2, ClockNS: 5_000_000_000, CurrPID: 211, CurrComm: "ktstr-worker", LocalDSQ: 1, ScxNrRun: 2, Events: map[string]uint64{"SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE": 0}},
					{CPU: 1, NrRunning: 0, ClockNS: 5_000_000_100, Preempted: true}}, ScxExitKind: 1026, ScxExit: "error_stall"},
			wire.Violation{Kind: "imbalance", CPU: -1, ElapsedNS: 1_500_000_000, Values: map[string]float64{"max": 5, "min": 0}, Message: "nr_running 5 vs 0 for 3 samples"},
			wire.VMExit{Reason: "guest_exit", ExitCode: 1, WallNS: 9_250_000_000, VCPUs: 4, KVMStats: map[string]uint64{"exits": 120000}},
		}
}

func probeEvent() wire.ProbeEvent {
	pid, cpu, nr := 211, 1, uint32(2)
	mask, dsq, flags, slice := uint64(0b1011), uint64(0xc000000000000001), uint64(1|1<<10), uint64(20_000_000)
	return wire.ProbeEvent{TimeNS: 5_000_000_000, CPU: 1, PID: 211, Comm: "ktstr-worker", Func: "dispatch_to_local_dsq",
		TaskPID: &pid, TaskComm: "ktstr-worker", CPUMask: &mask, Slice: &slice, DSQ: &dsq, DSQNr: &nr, EnqFlags: &flags, RqCPU: &cpu, RqNr: &nr}
}

// goldenStream encodes every type, plus frames only a decoder must
// survive: a user type, an undefined type, a bad JSON payload and an
// output chunk that is not UTF-8.
func goldenStream(t testing.TB) []byte {
	guest, host := everyTypeMessages()
	var b bytes.Buffer
	ge := wire.NewEncoder(&b, wire.WithClock(stepClock(5_000_000_000, 12_500_000)))
	he := wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost), wire.WithClock(stepClock(100, 250_000_000)))
	for i, m := range guest {
		if err := ge.Encode(m); err != nil {
			t.Fatal(err)
		}
		if i < len(host) {
			if err := he.Encode(host[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ge.WriteFrame(0x8001, []byte("user payload \x00\x01")))
	must(ge.WriteFrame(0x0050, []byte{0xde, 0xad}))
	must(ge.WriteFrame(wire.TypePhase, []byte(`{"phase":"scenario_start",`)))
	must(ge.WriteFrame(wire.TypeOutput, []byte{1, 0, 0, 0, 17, 0, 0, 0, 'o', 'k', 0xff, '\n'}))
	must(ge.WriteFrame(wire.TypeCheckResult, []byte("{\n  \"name\": \"fairness\",\n  \"pass\": true,\n  \"threshold\": 20,\n  \"observed\": 5.5\n}\n")))
	return b.Bytes()
}

func render(t testing.TB, stream []byte, o Options) (string, *Stats, error) {
	var out bytes.Buffer
	st, err := Run(bytes.NewReader(stream), &out, o)
	return out.String(), st, err
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/decode -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (if the change is intended, run go test ./pkg/decode -update)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	stream := goldenStream(t)
	checkGolden(t, "every_type.ktstr", stream)
	// The example in examples/pipelines.sh decodes the same stream.
	checkGolden(t, "../../../examples/sample.ktstr", stream)
	cases := []struct {
		name string
		o    Options
	}{
		{"every_type.txt", Options{Format: Text, Stats: true, Summary: true}},
		{"every_type.jsonl", Options{Format: JSON, Stats: true, Summary: true}},
		{"every_type_filtered.txt", Options{Format: Text, Filter: mustFilter(t, "cgroup_metrics,check_result", "0x8001")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, st, err := render(t, stream, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if st.PayloadErrors != 1 || st.Frames != int64(bytes.Count(stream, []byte("KTSR"))) {
				t.Errorf("stats: %d frames, %d payload errors; want every frame and 1 payload error (the cut phase)", st.Frames, st.PayloadErrors)
			}
			checkGolden(t, c.name, []byte(out))
		})
	}
}

func mustFilter(t testing.TB, specs ...string) Filter {
	f, err := ParseFilter(specs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestJSONPayloadsRoundTrip checks the JSON records against the messages
// that were encoded: every known payload decodes back to the same value.
func TestJSONPayloadsRoundTrip(t *testing.T) {
	guest, host := everyTypeMessages()
	want := map[wire.Type][]wire.Message{}
	for _, m := range append(guest, host...) {
		want[m.MsgType()] = append(want[m.MsgType()], m)
	}
	out, _, err := render(t, goldenStream(t), Options{Format: JSON})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[wire.Type]int{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var rec struct {
			TypeID  wire.Type       `json:"type_id"`
			Host    bool            `json:"host"`
			Payload json.RawMessage `json:"payload"`
			Error   string          `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("record is not JSON: %v\n%s", err, line)
		}
		if rec.Error != "" || rec.Payload == nil || rec.TypeID == wire.TypeCheckResult && seen[rec.TypeID] == 2 {
			continue // the extra frames, checked by the golden files
		}
		if rec.Host != rec.TypeID.IsHost() {
			t.Errorf("type %s: host=%v", rec.TypeID, rec.Host)
		}
		i := seen[rec.TypeID]
		seen[rec.TypeID]++
		if i >= len(want[rec.TypeID]) {
			continue
		}
		var got wire.Message
		switch rec.TypeID {
		case wire.TypeOutput:
			var o struct {
				StreamID uint8  `json:"stream_id"`
				Program  uint32 `json:"program"`
				Text     string `json:"text"`
			}
			json.Unmarshal(rec.Payload, &o)
			got = wire.Output{Stream: o.StreamID, Program: o.Program, Data: []byte(o.Text)}
		case wire.TypeGuestExit:
			var o struct{ Code int32 }
			json.Unmarshal(rec.Payload, &o)
			got = wire.GuestExit{Code: o.Code}
		case wire.TypeLog:
			var o struct{ Text string }
			json.Unmarshal(rec.Payload, &o)
			got = wire.Log{Text: o.Text}
		default:
			got, err = wire.Unmarshal(rec.TypeID, rec.Payload)
			if err != nil {
				t.Fatalf("type %s: %v", rec.TypeID, err)
			}
		}
		if !reflect.DeepEqual(got, want[rec.TypeID][i]) {
			t.Errorf("type %s: payload decodes to\n%#v\nwant\n%#v", rec.TypeID, got, want[rec.TypeID][i])
		}
	}
	for _, ty := range wire.Types() {
		if seen[ty] == 0 {
			t.Errorf("no %s record", ty)
		}
	}
}
