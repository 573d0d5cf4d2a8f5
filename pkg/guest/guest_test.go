package guest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

func TestSpread(t *testing.T) {
	cases := []struct {
		in   []uint64
		want float64
	}{
		{nil, 0},
		{[]uint64{5}, 0},
		{[]uint64{100, 100}, 0},
		{[]uint64{90, 110}, 20},
		{[]uint64{0, 0, 0}, 0},
		{[]uint64{50, 100, 150}, 100},
		{[]uint64{0, 200}, 200},
	}
	for _, c := range cases {
		if got := Spread(c.in); got != c.want {
			t.Errorf("Spread(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func worker(id int, work string, iters, cpuNS, gapMS uint64, cpus ...int) wire.WorkerMetrics {
	return wire.WorkerMetrics{Worker: id, PID: 100 + id, Work: work, Iterations: iters, CPUTimeNS: cpuNS, WallNS: 3e9,
		MaxGapNS: gapMS * 1e6, CPUs: cpus, Migrations: uint64(len(cpus))}
}

func find(res []wire.CheckResult, name string) *wire.CheckResult {
	for i := range res {
		if res[i].Name == name {
			return &res[i]
		}
	}
	return nil
}

func TestEvaluate(t *testing.T) {
	exit3 := 3
	payload := wire.WorkerMetrics{Worker: 9, PID: 9, Work: "payload", CPUTimeNS: 5e6, ExitCode: &exit3}
	cases := []struct {
		name    string
		cg      CgroupSample
		chk     scenario.Checks
		pass    map[string]bool // expected checks and their outcome; others must be absent
		spread  float64
		gapMS   uint64
		cpusUse int
	}{
		{
			name:   "healthy pair",
			cg:     CgroupSample{Name: "cg0", Cpuset: []int{0, 1}, Workers: []wire.WorkerMetrics{worker(0, "spin", 10, 1000e6, 30, 0), worker(1, "spin", 12, 1050e6, 40, 1)}},
			pass:   map[string]bool{"starvation": true, "fairness": true, "isolation": true},
			spread: 4.9, gapMS: 40, cpusUse: 2,
		},
		{
			name:  "stuck worker",
			cg:    CgroupSample{Name: "cg0", Cpuset: []int{0, 1}, Workers: []wire.WorkerMetrics{worker(0, "spin", 10, 1000e6, 2500, 0), worker(1, "spin", 12, 1000e6, 40, 1)}},
			pass:  map[string]bool{"starvation": false, "fairness": true, "isolation": true},
			gapMS: 2500, cpusUse: 2,
		},
		{
			name:  "zero iterations counts as starved",
			cg:    CgroupSample{Name: "cg0", Cpuset: []int{0}, Workers: []wire.WorkerMetrics{worker(0, "yield", 0, 0, 1, 0)}},
			pass:  map[string]bool{"starvation": false, "isolation": true},
			gapMS: 1, cpusUse: 1,
		},
		{
			name:  "custom threshold",
			cg:    CgroupSample{Name: "cg0", Cpuset: []int{0}, Workers: []wire.WorkerMetrics{worker(0, "spin", 5, 10, 600, 0)}},
			chk:   scenario.Checks{StarvationMS: 500},
			pass:  map[string]bool{"starvation": false, "isolation": true},
			gapMS: 600, cpusUse: 1,
		},
		{
			name:   "unfair",
			cg:     CgroupSample{Name: "cg0", Cpuset: []int{0, 1}, Workers: []wire.WorkerMetrics{worker(0, "spin", 10, 600e6, 10, 0), worker(1, "spin", 12, 1400e6, 10, 0)}},
			pass:   map[string]bool{"starvation": true, "fairness": false, "isolation": true},
			spread: 80, gapMS: 10, cpusUse: 1,
		},
		{
			name:   "fairness per work type, looser threshold",
			cg:     CgroupSample{Name: "cg0", Cpuset: []int{0, 1}, Workers: []wire.WorkerMetrics{worker(0, "spin", 10, 800e6, 10, 0), worker(1, "spin", 12, 1000e6, 10, 1), worker(2, "pingpong", 5, 1e6, 10, 1)}},
			chk:    scenario.Checks{SpreadPct: 30},
			pass:   map[string]bool{"starvation": true, "fairness": true, "isolation": true},
			spread: 22.2, gapMS: 10, cpusUse: 2,
		},
		{
			name:  "isolation broken",
			cg:    CgroupSample{Name: "cg1", Cpuset: []int{1}, Workers: []wire.WorkerMetrics{worker(0, "spin", 10, 1e9, 10, 0, 1)}},
			pass:  map[string]bool{"starvation": true, "isolation": false},
			gapMS: 10, cpusUse: 2,
		},
		{
			name:   "disabled checks",
			cg:     CgroupSample{Name: "cg1", Cpuset: []int{1}, Workers: []wire.WorkerMetrics{worker(0, "spin", 10, 1e9, 9000, 0), worker(1, "spin", 10, 1, 9000, 0)}},
			chk:    scenario.Checks{Disable: []string{"starvation", "fairness", "isolation"}},
			pass:   map[string]bool{},
			spread: 200, gapMS: 9000, cpusUse: 1,
		},
		{
			name:    "payload exit status fails, not starvation",
			cg:      CgroupSample{Name: "p", Cpuset: []int{0}, Workers: []wire.WorkerMetrics{payload}},
			pass:    map[string]bool{"payload": false},
			cpusUse: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, res := Evaluate(2, &c.cg, c.chk)
			if m.SpreadPct != c.spread || m.MaxGapNS != c.gapMS*1e6 || m.CPUsUsed != c.cpusUse || m.Step != 2 || m.Workers != len(c.cg.Workers) {
				t.Errorf("metrics %+v: want spread %v gap %d ms cpus %d", m, c.spread, c.gapMS, c.cpusUse)
			}
			if len(res) != len(c.pass) {
				t.Errorf("got %d checks %+v, want %v", len(res), res, c.pass)
			}
			for name, pass := range c.pass {
				r := find(res, name)
				if r == nil {
					t.Errorf("check %s missing", name)
					continue
				}
				if r.Pass != pass || r.Step != 2 || r.Cgroup != c.cg.Name {
					t.Errorf("check %s: %+v, want pass=%v", name, *r, pass)
				}
				if !pass && r.Detail == "" {
					t.Errorf("failed check %s has no detail", name)
				}
			}
		})
	}
	// Thresholds and observed values are reported as documented.
	cg := CgroupSample{Name: "cg0", Cpuset: []int{0}, Workers: []wire.WorkerMetrics{worker(0, "spin", 1, 100, 2100, 0), worker(1, "spin", 1, 100, 5, 3)}}
	_, res := Evaluate(0, &cg, scenario.Checks{})
	if r := find(res, "starvation"); r.Threshold != 2000 || r.Observed != 2100 || r.Unit != "ms" {
		t.Errorf("starvation %+v", *r)
	}
	if r := find(res, "fairness"); r.Threshold != 15 || r.Observed != 0 {
		t.Errorf("fairness %+v", *r)
	}
	if r := find(res, "isolation"); r.Observed != 1 || !strings.Contains(r.Detail, "CPUs 3 outside cpuset 0") {
		t.Errorf("isolation %+v", *r)
	}
	if !reflect.DeepEqual(cg.Workers[1].OffCpuset, []int{3}) {
		t.Errorf("OffCpuset not filled: %v", cg.Workers[1].OffCpuset)
	}
}

func TestExitCode(t *testing.T) {
	fail := []wire.CheckResult{{Name: "a", Pass: true}, {Name: "b"}}
	ok := []wire.CheckResult{{Name: "a", Pass: true}}
	cases := []struct {
		o    RunOutcome
		want int
	}{
		{RunOutcome{}, ExitPass},
		{RunOutcome{Checks: ok}, ExitPass},
		{RunOutcome{Checks: fail}, ExitCheckFailed},
		{RunOutcome{Checks: fail, SchedulerDied: true}, ExitSchedulerDied},
		{RunOutcome{NotAttached: true, SchedulerDied: true}, ExitNotAttached},
		{RunOutcome{BadConfig: true, Checks: fail}, ExitBadConfig},
		{RunOutcome{Internal: true, BadConfig: true}, ExitInternal},
	}
	for _, c := range cases {
		if got := c.o.ExitCode(); got != c.want {
			t.Errorf("%+v: got %d want %d", c.o, got, c.want)
		}
	}
}

func TestOverrides(t *testing.T) {
	o, err := ParseOverrides(`console=ttyS0 ktstr.scenario=mixed-burst ktstr.attach_timeout=5s ktstr.hold=1500 ktstr.sched_args=-e,100 "ktstr.port=my port" ktstr.future=1 ktstr.kthreadd_cpu=1 ktstr.spread_pct=35.5 ktstr.starvation_ms=3000 ktstr.task_stall_ms=1500`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Overrides{Scenario: "mixed-burst", AttachTimeout: 5 * time.Second, Hold: 1500 * time.Millisecond,
		SchedArgs: []string{"-e", "100"}, HasSchedArgs: true, Port: "my port", KthreaddCPU: 1, SpreadPct: 35.5, StarvationMS: 3000, TaskStallMS: 1500, Unknown: []string{"ktstr.future"}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	o, err = ParseOverrides("ktstr.sched_args= ktstr.scheduler=none")
	if err != nil || !o.HasSchedArgs || o.SchedArgs != nil || !o.NoScheduler {
		t.Fatalf("empty args / none: %+v %v", o, err)
	}
	if o, err := ParseOverrides("ktstr.task_stall_ms=0"); err != nil || o.TaskStallMS != -1 {
		t.Fatalf("task_stall_ms=0 must turn the check off: %+v %v", o, err)
	}
	for _, bad := range []string{"ktstr.task_stall_ms=-5", "ktstr.task_stall_ms=2s", "ktstr.spread_pct=0", "ktstr.starvation_ms=-1", "ktstr.kthreadd_cpu=x", "ktstr.attach_timeout=soon", "ktstr.hold=-5", "ktstr.scheduler=scx_simple", "ktstr.port=a/b", "ktstr.scenario="} {
		if _, err := ParseOverrides(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := SplitCmdline(` a  "b c"d  e="f g" `); !reflect.DeepEqual(got, []string{"a", "b cd", "e=f g"}) {
		t.Errorf("split: %q", got)
	}
}

func TestKmsg(t *testing.T) {
	var p KmsgParser
	lines := []struct {
		rec  string
		want SchedEvent
		ok   bool
	}{
		{"6,512,3000000,-;sched_ext: BPF scheduler \"qmap\" enabled\n", SchedEvent{Enabled: true, Ops: "qmap"}, true},
		{"6,513,3000001,-;random: crng init done\n", SchedEvent{}, false},
		{"3,514,4000000,-;sched_ext: BPF scheduler \"qmap\" disabled (scx_bpf_error)\n SUBSYSTEM=x\n", SchedEvent{Disabled: true, Ops: "qmap", Reason: "scx_bpf_error"}, true},
		{"3,515,4000001,-;sched_ext: qmap: dispatch failed after 100 events\n", SchedEvent{Ops: "qmap", Message: "dispatch failed after 100 events"}, true},
		{"3,516,4000002,-;sched_ext: qmap: a second line is not the message\n", SchedEvent{}, false},
		{"garbage without separator", SchedEvent{}, false},
	}
	for _, l := range lines {
		text, ok := KmsgRecord(l.rec)
		var ev SchedEvent
		if ok {
			ev, ok = p.Line(text)
		}
		if ok != l.ok || ev != l.want {
			t.Errorf("%q: got %+v %v, want %+v %v", l.rec, ev, ok, l.want, l.ok)
		}
	}
	for reason, want := range map[string]int{"unregistered from user space": 64, "runnable task stall": 1026, "scx_bpf_error": 1025, "???": 0} {
		if k, _ := ExitKind(reason); k != want {
			t.Errorf("ExitKind(%q) = %d, want %d", reason, k, want)
		}
	}
	for _, c := range []struct {
		ops, name string
		want      bool
	}{{"simple", "scx_simple", true}, {"qmap", "scx_qmap", true}, {"", "scx_simple", false}, {"rusty", "scx_simple", false}, {"x", "", true}} {
		if got := OpsMatches(c.ops, c.name); got != c.want {
			t.Errorf("OpsMatches(%q,%q) = %v", c.ops, c.name, got)
		}
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, v := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadTopology(t *testing.T) {
	files := map[string]string{"devices/system/cpu/online": "0-3"}
	for c := 0; c < 4; c++ {
		d := "devices/system/cpu/cpu" + string(rune('0'+c)) + "/cache/"
		files[d+"index0/level"] = "1"
		files[d+"index0/type"] = "Data"
		files[d+"index0/shared_cpu_list"] = string(rune('0' + c))
		files[d+"index1/level"] = "3"
		files[d+"index1/type"] = "Unified"
		files[d+"index1/shared_cpu_list"] = map[bool]string{true: "0-1", false: "2-3"}[c < 2]
	}
	files["devices/system/node/node0/cpulist"] = "0-1"
	files["devices/system/node/node1/cpulist"] = "2-3"
	files["devices/system/node/node2/cpulist"] = ""
	topo, err := ReadTopology(writeTree(t, files))
	if err != nil {
		t.Fatal(err)
	}
	want := &scenario.Topology{Online: []int{0, 1, 2, 3}, LLCs: [][]int{{0, 1}, {2, 3}}, Nodes: [][]int{{0, 1}, {2, 3}}}
	if !reflect.DeepEqual(topo, want) {
		t.Fatalf("got %+v want %+v", topo, want)
	}
	// No cache or node information: one LLC (by package) and one node.
	topo, err = ReadTopology(writeTree(t, map[string]string{"devices/system/cpu/online": "0-1",
		"devices/system/cpu/cpu0/topology/package_cpus_list": "0-1", "devices/system/cpu/cpu1/topology/package_cpus_list": "0-1"}))
	if err != nil || !reflect.DeepEqual(topo.LLCs, [][]int{{0, 1}}) || !reflect.DeepEqual(topo.Nodes, [][]int{{0, 1}}) {
		t.Fatalf("fallback: %+v %v", topo, err)
	}
	if _, err := ReadTopology(t.TempDir()); err == nil {
		t.Fatal("missing sysfs accepted")
	}
}

func TestFindPort(t *testing.T) {
	sys := writeTree(t, map[string]string{
		"class/virtio-ports/vport0p0/name": "",
		"class/virtio-ports/vport0p1/name": "ktstr",
		"class/virtio-ports/vport0p1/dev":  "250:1",
		"class/virtio-ports/vport1p1/name": "other",
	})
	dev, mm, err := FindPort(sys, "ktstr")
	if err != nil || dev != "vport0p1" || mm != "250:1" {
		t.Fatalf("got %q %q %v", dev, mm, err)
	}
	if _, _, err := FindPort(sys, "nope"); err == nil || !strings.Contains(err.Error(), `vport1p1="other"`) {
		t.Fatalf("missing port error should list ports: %v", err)
	}
}

func TestOverridesShellExec(t *testing.T) {
	o, err := ParseOverrides("console=ttyS0 ktstr.exec=ZWNobyBoaTsgZXhpdCAz ktstr.mode=shell")
	if err != nil || !o.HasExec || o.Exec != "echo hi; exit 3" || !o.Shell || len(o.Unknown) != 0 {
		t.Fatalf("got %+v, %v", o, err)
	}
	for _, bad := range []string{"ktstr.exec=!!!", "ktstr.exec=", "ktstr.mode=gui"} {
		if _, err := ParseOverrides(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
