package scenario

import (
	"fmt"
	"strings"
	"testing"
)

func one(workers int, work string) string {
	return fmt.Sprintf(`{"steps":[{"cgroups":[{"name":"a","workers":%d,"work":%s}]}]}`, workers, work)
}

func TestWorkTypes(t *testing.T) {
	cases := []struct {
		name    string
		workers int
		work    string
		want    string // "" = valid
	}{
		{"cpu_spin", 2, `{"type":"cpu_spin"}`, ""},
		{"yield_heavy", 1, `{"type":"yield_heavy"}`, ""},
		{"mixed", 1, `{"type":"mixed"}`, ""},
		{"io_sync", 1, `{"type":"io_sync"}`, ""},
		{"pipe_io", 2, `{"type":"pipe_io","burst_iters":4096}`, ""},
		{"pipe_io odd", 3, `{"type":"pipe_io"}`, "even count"},
		{"futex_ping_pong", 4, `{"type":"futex_ping_pong","spin_iters":10}`, ""},
		{"futex_fan_out", 5, `{"type":"futex_fan_out"}`, ""},
		{"futex_fan_out group", 4, `{"type":"futex_fan_out"}`, "groups of 5"},
		{"futex_fan_out 2", 6, `{"type":"futex_fan_out","fan_out":2}`, ""},
		{"fan_out too big", 65, `{"type":"futex_fan_out","fan_out":64}`, "out of range 1..63"},
		{"cache_pressure", 2, `{"type":"cache_pressure","size_kb":1024,"stride":4096}`, ""},
		{"cache stride", 1, `{"type":"cache_pressure","size_kb":1,"stride":2048}`, "larger than"},
		{"cache_yield", 1, `{"type":"cache_yield"}`, ""},
		{"cache_pipe", 2, `{"type":"cache_pipe","size_kb":64}`, ""},
		{"cache_pipe stride", 2, `{"type":"cache_pipe","stride":64}`, "stride does not apply to cache_pipe"},
		{"sequence", 1, `{"type":"sequence","phases":[{"phase":"spin","ms":10},{"phase":"io","ms":5}]}`, ""},
		{"sequence empty", 1, `{"type":"sequence"}`, "1 to 16 phases"},
		{"sequence bad phase", 1, `{"type":"sequence","phases":[{"phase":"dance","ms":10}]}`, "phase \"dance\""},
		{"sequence bad ms", 1, `{"type":"sequence","phases":[{"phase":"sleep","ms":0}]}`, "ms 0 out of range"},
		{"phases on spin", 1, `{"type":"spin","phases":[{"phase":"spin","ms":1}]}`, "phases only apply"},
		{"fork_exit", 2, `{"type":"fork_exit"}`, ""},
		{"nice_sweep", 2, `{"type":"nice_sweep"}`, ""},
		{"affinity_churn", 2, `{"type":"affinity_churn","spin_iters":1}`, ""},
		{"policy_churn", 2, `{"type":"policy_churn"}`, ""},
		{"fan_out_compute", 5, `{"type":"fan_out_compute","cache_footprint_kb":64,"operations":2,"sleep_us":50}`, ""},
		{"fan_out_compute ops", 5, `{"type":"fan_out_compute","operations":1001}`, "operations 1001 out of range"},
		{"page_fault_churn", 2, `{"type":"page_fault_churn"}`, ""},
		{"page_fault touches", 1, `{"type":"page_fault_churn","region_kb":8,"touches_per_cycle":3}`, "more than the region's 2 pages"},
		{"mutex_contention", 8, `{"type":"mutex_contention"}`, ""},
		{"mutex group", 6, `{"type":"mutex_contention"}`, "groups of 4"},
		{"mutex contenders", 1, `{"type":"mutex_contention","contenders":1}`, "contenders 1 out of range"},
		{"custom", 1, `{"type":"custom","argv":["/bin/true"]}`, ""},
		{"custom no argv", 1, `{"type":"custom"}`, "custom work needs argv"},
		{"spin_iters on spin", 1, `{"type":"spin","spin_iters":5}`, "spin_iters does not apply to spin work (it takes no parameters)"},
		{"size_kb on mixed", 1, `{"type":"mixed","size_kb":5}`, "size_kb does not apply"},
		{"negative", 2, `{"type":"pipe_io","burst_iters":-1}`, "out of range"},
		{"pair_with on fan", 5, `{"type":"futex_fan_out","pair_with":"b"}`, "pair_with only applies"},
		{"argv on mixed", 1, `{"type":"mixed","argv":["x"]}`, "argv only applies"},
		{"too much memory", 8, `{"type":"cache_pressure","size_kb":65536}`, "more than 256 MiB of buffers"},
		{"memory just fits", 4, `{"type":"page_fault_churn","region_kb":65536}`, ""},
		{"unknown lists types", 1, `{"type":"dance"}`, "spin, cpu_spin, yield"},
		{"upstream name", 1, `{"type":"FutexPingPong"}`, `scenario files name it "futex_ping_pong"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(one(c.workers, c.work)))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestWorkDefaultsAndGroups(t *testing.T) {
	for _, name := range WorkTypes() {
		wi, ok := LookupWork(name)
		if !ok || wi.Summary == "" || (name != WorkPayload && wi.Unit == "") {
			t.Errorf("%s: incomplete description %+v", name, wi)
		}
	}
	// Upstream ktstr's 20, by their snake_case names.
	for _, up := range []string{"CpuSpin", "YieldHeavy", "Mixed", "IoSync", "Bursty", "PipeIo", "FutexPingPong", "FutexFanOut",
		"CachePressure", "CacheYield", "CachePipe", "Sequence", "ForkExit", "NiceSweep", "AffinityChurn", "PolicyChurn",
		"FanOutCompute", "PageFaultChurn", "MutexContention", "Custom"} {
		if _, ok := LookupWork(snake(up)); !ok {
			t.Errorf("upstream work type %s (%s) missing", up, snake(up))
		}
	}
	cases := []struct {
		w     Work
		kind  string
		group int
		block int
	}{
		{Work{Type: WorkCPUSpin}, WorkSpin, 1, 0},
		{Work{Type: WorkYieldHeavy}, WorkYield, 1, 0},
		{Work{Type: WorkPipeIO}, WorkPipeIO, 2, 0},
		{Work{Type: WorkPingPong, Mode: "futex"}, WorkPingPong, 2, 0},
		{Work{Type: WorkFutexFanOut}, WorkFutexFanOut, 5, 0},
		{Work{Type: WorkFanOutCompute, FanOut: 2, SleepUS: 2500}, WorkFanOutCompute, 3, 3},
		{Work{Type: WorkMutexContention, Contenders: 8}, WorkMutexContention, 8, 0},
		{Work{Type: WorkBursty, RunMS: 5, SleepMS: 70}, WorkBursty, 1, 70},
		{Work{Type: WorkSequence, Phases: []Phase{{"spin", 500}, {"sleep", 40}, {"yield", 90}}}, WorkSequence, 1, 90},
	}
	for _, c := range cases {
		if c.w.Kind() != c.kind || c.w.GroupSize() != c.group || c.w.MaxBlock() != c.block {
			t.Errorf("%+v: kind %s group %d block %d", c.w, c.w.Kind(), c.w.GroupSize(), c.w.MaxBlock())
		}
	}
	d := Work{Type: WorkPageFaultChurn, Touches: 7}.WithDefaults()
	if d.RegionKB != 4096 || d.Touches != 7 || d.SpinIters != 64 || d.SizeKB != 0 {
		t.Errorf("defaults %+v", d)
	}
	if (Work{Type: WorkCPUSpin}).FairnessApplies() != true || (Work{Type: WorkNiceSweep}).FairnessApplies() {
		t.Error("fairness applicability")
	}
}

func TestWorkloadCheckThresholds(t *testing.T) {
	s, err := Parse([]byte(`{"checks":{"max_migration_ratio":0.5,"max_wake_latency_p99_us":2000,"disable":["wake_latency"]},"steps":[{}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, on := s.Checks.Threshold(CheckMigrationRatio); !on || v != 0.5 {
		t.Errorf("migration_ratio %v %v", v, on)
	}
	if _, on := s.Checks.Threshold(CheckWakeLatency); on {
		t.Error("disabled check on")
	}
	if _, on := s.Checks.Threshold(CheckThroughputCV); on {
		t.Error("unset check on")
	}
	for _, bad := range []string{`{"max_run_delay_pct":101}`, `{"max_throughput_cv":-1}`, `{"disable":["wake"]}`, `{"max_bogus":1}`} {
		if _, err := Parse([]byte(`{"checks":` + bad + `,"steps":[{}]}`)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
