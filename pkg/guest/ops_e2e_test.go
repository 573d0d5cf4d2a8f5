package guest_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/guest"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// opsScenario exercises the operations whose effect a check can observe:
// a nested cgroup pinned by affinity to CPU 1 (isolation), a cgroup set
// to SCHED_BATCH (policy), and one frozen for a step (frozen) then thawed
// (starvation: it runs again).
const opsScenario = `{"name": "ops-e2e", "topology": "1n1l2c1t",
 "checks": {"disable": ["fairness"]},
 "steps": [
  {"name": "start", "hold_ms": 1000,
   "cgroups": [{"name": "p/pinned", "workers": 2, "work": {"type": "spin"}},
               {"name": "batch", "workers": 1, "work": {"type": "spin"}},
               {"name": "frz", "workers": 2, "work": {"type": "spin"}}],
   "ops": [{"op": "set_affinity", "cgroup": "p/pinned", "cpuset": "list:1"},
           {"op": "set_policy", "cgroup": "batch", "policy": "batch"}]},
  {"name": "frozen", "hold_ms": 1500, "ops": [{"op": "freeze_cgroup", "cgroup": "frz"}]},
  {"name": "thawed", "hold_ms": 1500, "ops": [{"op": "thaw_cgroup", "cgroup": "frz"}]}]}`

// TestE2EOperations: the operations take effect in a real guest, as the
// checks that go with them observe.
func TestE2EOperations(t *testing.T) {
	e := needE2E(t)
	path := filepath.Join(t.TempDir(), "ops-e2e.json")
	if err := os.WriteFile(path, []byte(opsScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	blob := e.initramfs(t, "--scenario", path)
	r := boot(t, e, blob, "")
	wantExit(t, r, guest.ExitPass)
	find := func(name, cg string, step int) *wire.CheckResult {
		for _, c := range r.checks() {
			if c.Name == name && c.Cgroup == cg && c.Step == step {
				return &c
			}
		}
		t.Fatalf("no %s check for cgroup %s at step %d\n%s", name, cg, step, r)
		return nil
	}
	// Frozen: no CPU time while frozen, and no starvation check then.
	if c := find(guest.CheckFrozen, "frz", 1); !c.Pass || c.Observed != 0 {
		t.Fatalf("frozen check %+v", c)
	}
	for _, c := range r.checks() {
		if c.Cgroup == "frz" && c.Step == 1 && c.Name != guest.CheckFrozen {
			t.Fatalf("check %s ran on a frozen cgroup: %+v", c.Name, c)
		}
	}
	// Thawed: it made progress again.
	if c := find(guest.CheckStarvation, "frz", 2); !c.Pass {
		t.Fatalf("after thaw: %+v", c)
	}
	var frzIters [3]uint64
	for _, m := range r.frames {
		if w, ok := m.(wire.WorkerMetrics); ok && w.Cgroup == "frz" {
			frzIters[w.Step] += w.Iterations
		}
	}
	if frzIters[0] == 0 || frzIters[1] != 0 || frzIters[2] == 0 {
		t.Fatalf("frz iterations per step %v: want progress, none while frozen, progress", frzIters)
	}
	// Affinity: the pinned workers ran only on CPU 1, and isolation says so.
	for step := 0; step < 3; step++ {
		if c := find(guest.CheckIsolation, "p/pinned", step); !c.Pass {
			t.Fatalf("isolation %+v", c)
		}
	}
	pinned := 0
	for _, m := range r.frames {
		if w, ok := m.(wire.WorkerMetrics); ok && w.Cgroup == "p/pinned" {
			pinned++
			if !slices.Equal(w.CPUs, []int{1}) {
				t.Fatalf("pinned worker ran on CPUs %v, want [1]", w.CPUs)
			}
		}
	}
	if pinned != 6 {
		t.Fatalf("%d worker_metrics for p/pinned, want 2 workers x 3 steps", pinned)
	}
	// Policy: the batch worker kept SCHED_BATCH at every step's end.
	for step := 0; step < 3; step++ {
		if c := find(guest.CheckPolicy, "batch", step); !c.Pass || c.Observed != 0 {
			t.Fatalf("policy %+v", c)
		}
	}
	// The implicit parent of the nested cgroup is reported, without checks.
	seen := false
	for _, m := range r.frames {
		if cm, ok := m.(wire.CgroupMetrics); ok && cm.Cgroup == "p" && cm.Workers == 0 {
			seen = true
		}
	}
	if !seen {
		t.Fatalf("no cgroup_metrics for the implicit parent p\n%s", r)
	}
}

// TestE2EBPFProgStats: with scx_simple loaded the guest reports its BPF
// programs, struct_ops ones among them, with verified instruction counts.
func TestE2EBPFProgStats(t *testing.T) {
	e := needE2E(t)
	blob := e.initramfs(t, "--scheduler", e.scheduler(t, "scx_simple"), "--scenario", "steady")
	r := boot(t, e, blob, "ktstr.hold=500")
	wantExit(t, r, guest.ExitPass)
	var st *wire.BPFProgStats
	for _, m := range r.frames {
		if s, ok := m.(wire.BPFProgStats); ok {
			if st != nil {
				t.Fatal("more than one bpf_prog_stats frame")
			}
			st = &s
		}
	}
	if st == nil {
		t.Fatalf("no bpf_prog_stats frame\n%s", r)
	}
	if st.Scheduler != "scx_simple" || st.SelectedBy != "fd" {
		t.Errorf("scheduler %q selected_by %q, want scx_simple and fd", st.Scheduler, st.SelectedBy)
	}
	structOps := 0
	for _, p := range st.Programs {
		t.Logf("prog %d %s %s verified_insns=%d load_offset=%dms jited=%d", p.ID, p.Name, p.Type, p.VerifiedInsns, p.LoadOffsetNS/1e6, p.JitedSize)
		if p.Type == "StructOps" && p.VerifiedInsns > 0 {
			structOps++
		}
		if p.LoadOffsetNS < 0 {
			t.Errorf("program %s loaded before the scheduler started (offset %d ns)", p.Name, p.LoadOffsetNS)
		}
	}
	if structOps == 0 {
		t.Fatalf("no struct_ops program with verified instructions in %+v", st.Programs)
	}
}
