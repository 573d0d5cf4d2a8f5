package scenario

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"empty", `{}`, "no steps"},
		{"unknown field", `{"steps":[{"hold_ms":1}], "bogus": 1}`, "unknown field"},
		{"trailing", `{"steps":[{}]} {}`, "trailing"},
		{"bad work", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"dance"}}]}]}`, "unknown work type"},
		{"no work", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{}}]}]}`, "work.type missing"},
		{"odd pingpong", `{"steps":[{"cgroups":[{"name":"a","workers":3,"work":{"type":"pingpong"}}]}]}`, "even count"},
		{"bursty no params", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"bursty"}}]}]}`, "run_ms and sleep_ms"},
		{"payload no argv", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"payload"}}]}]}`, "argv"},
		{"dup cgroup", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"spin"}},{"name":"a","workers":1,"work":{"type":"spin"}}]}]}`, "already exists"},
		{"bad name", `{"steps":[{"cgroups":[{"name":"../x","workers":1,"work":{"type":"spin"}}]}]}`, "cgroup name"},
		{"bad cpuset", `{"steps":[{"cgroups":[{"name":"a","cpuset":"disjoint:2/2","workers":1,"work":{"type":"spin"}}]}]}`, "0 <= I < N"},
		{"weight", `{"steps":[{"cgroups":[{"name":"a","weight":20000,"workers":1,"work":{"type":"spin"}}]}]}`, "weight"},
		{"hold", `{"steps":[{"hold_ms":-1}]}`, "hold_ms"},
		{"remove missing", `{"steps":[{"ops":[{"op":"remove_cgroup","cgroup":"x"}]}]}`, "does not exist"},
		{"unknown op", `{"steps":[{"ops":[{"op":"explode"}]}]}`, "unknown op"},
		{"move too many", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"spin"}},{"name":"b","workers":1,"work":{"type":"spin"}}],"ops":[{"op":"move_workers","cgroup":"a","to":"b","count":2}]}]}`, "count 2"},
		{"move pingpong", `{"steps":[{"cgroups":[{"name":"a","workers":2,"work":{"type":"pingpong"}},{"name":"b","workers":1,"work":{"type":"spin"}}],"ops":[{"op":"move_workers","cgroup":"a","to":"b"}]}]}`, "cannot be moved"},
		{"pair missing", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"pingpong","pair_with":"b"}}]}]}`, "does not exist"},
		{"pair not mutual", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"pingpong","pair_with":"b"}},{"name":"b","workers":2,"work":{"type":"pingpong"}}]}]}`, "paired back"},
		{"pair removed", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"pingpong","pair_with":"b"}},{"name":"b","workers":1,"work":{"type":"pingpong","pair_with":"a"}}]},{"ops":[{"op":"remove_cgroup","cgroup":"b"}]}]}`, "does not exist"},
		{"disable unknown", `{"checks":{"disable":["speed"]},"steps":[{}]}`, "unknown check"},
		{"signal", `{"steps":[{"ops":[{"op":"kill_scheduler","signal":"HUP"}]}]}`, "signal"},
		{"bad mode", `{"steps":[{"cgroups":[{"name":"a","workers":2,"work":{"type":"pingpong","mode":"smoke"}}]}]}`, "pipe or futex"},
		{"mode on spin", `{"steps":[{"cgroups":[{"name":"a","workers":2,"work":{"type":"spin","mode":"futex"}}]}]}`, "mode only"},
		{"pair modes differ", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"pingpong","pair_with":"b","mode":"futex"}},{"name":"b","workers":1,"work":{"type":"pingpong","pair_with":"a"}}]}]}`, "different modes"},
		{"argv on spin", `{"steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"spin","argv":["x"]}}]}]}`, "argv only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestParseValidAndDefaults(t *testing.T) {
	s, err := Parse([]byte(`{"name":"x","checks":{"starvation_ms":500,"disable":["fairness"]},"steps":[
		{"cgroups":[{"name":"a","workers":2,"work":{"type":"spin"}},{"name":"b","workers":0,"work":{"type":"yield"}}]},
		{"hold_ms":100,"ops":[{"op":"move_workers","cgroup":"a","to":"b","count":1},{"op":"set_cpuset","cgroup":"b","cpuset":"0"},
		 {"op":"set_weight","cgroup":"a","weight":50},{"op":"kill_scheduler"},{"op":"add_cgroup","add":{"name":"c","workers":1,"work":{"type":"payload","argv":["/bin/true"]}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Steps[0].Hold() != DefaultHoldMS*time.Millisecond || s.Steps[1].Hold() != 100*time.Millisecond {
		t.Fatalf("holds %v %v", s.Steps[0].Hold(), s.Steps[1].Hold())
	}
	if s.Checks.StarvationThreshold() != 500*time.Millisecond || s.Checks.SpreadThreshold() != DefaultSpreadPct {
		t.Fatalf("thresholds %v %v", s.Checks.StarvationThreshold(), s.Checks.SpreadThreshold())
	}
	if s.Checks.Enabled("fairness") || !s.Checks.Enabled("starvation") {
		t.Fatal("disable list not honoured")
	}
	if s.Steps[0].Cgroups[0].EffectiveWeight() != 100 {
		t.Fatal("default weight")
	}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Parse(b)
	if err != nil || !reflect.DeepEqual(s, s2) {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
}

func TestCpusetParseAndResolve(t *testing.T) {
	topo := &Topology{
		Online: []int{0, 1, 2, 3, 4, 5},
		LLCs:   [][]int{{0, 1, 2}, {3, 4, 5}},
		Nodes:  [][]int{{0, 1, 2, 3, 4, 5}},
	}
	cases := []struct {
		spec    string
		want    []int
		wantErr string
	}{
		{"", []int{0, 1, 2, 3, 4, 5}, ""},
		{"all", []int{0, 1, 2, 3, 4, 5}, ""},
		{"disjoint:0/2", []int{0, 1, 2}, ""},
		{"disjoint:1/2", []int{3, 4, 5}, ""},
		{"disjoint:0/4", []int{0}, ""},
		{"disjoint:1/4", []int{1, 2}, ""},
		{"disjoint:3/4", []int{4, 5}, ""},
		{"disjoint:0/7", nil, "needs at least 7 CPUs"},
		{"list:1-2,5", []int{1, 2, 5}, ""},
		{"5,1-2,2", []int{1, 2, 5}, ""},
		{"list:9", nil, "not online"},
		{"llc:1", []int{3, 4, 5}, ""},
		{"llc:2", nil, "has 2 LLCs"},
		{"numa:0", []int{0, 1, 2, 3, 4, 5}, ""},
		{"numa:1", nil, "has 1 NUMA nodes"},
		{"disjoint:1", nil, "want disjoint"},
		{"list:3-1", nil, "runs backwards"},
		{"list:", nil, "empty"},
		{"llc:x", nil, "want llc:I"},
		{"cache:1", nil, "unknown kind"},
		{"list:99999", nil, "out of range"},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			cs, err := ParseCpuset(c.spec)
			var got []int
			if err == nil {
				got, err = cs.Resolve(topo)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %v %v, want error %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v %v, want %v", got, err, c.want)
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	// The first five, still there (the catalog grows; TestCatalogFitsItsTopology checks every entry).
	want := []string{"cpuset-shrink", "mixed-burst", "ping-pong-cross-llc", "steady", "two-cgroups-disjoint"}
	got := Names()
	if !slices.IsSorted(got) {
		t.Errorf("catalog not sorted: %v", got)
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("catalog %v lacks %s", got, n)
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Fatalf("catalog %v lacks %s", got, n)
		}
	}
	for _, n := range got {
		s, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != n {
			t.Errorf("%s: name field %q", n, s.Name)
		}
	}
	if _, err := Lookup("nope"); err == nil || !strings.Contains(err.Error(), "steady") {
		t.Fatalf("missing scenario error should list the catalog: %v", err)
	}
	if _, err := Lookup("../scenario"); err == nil {
		t.Fatal("path-like name accepted")
	}
	if _, _, err := Load("steady"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(t.TempDir() + "/missing.json"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range Names() {
		b, _ := CatalogBytes(n)
		f.Add(b)
	}
	f.Add([]byte(`{"steps":[{"ops":[{"op":"move_workers","cgroup":"a","to":"b","count":-1}]}]}`))
	f.Add([]byte(`{"steps":[{"cgroups":[{"name":"a","cpuset":"list:0-4095","workers":1,"work":{"type":"spin"}}]}]}`))
	f.Add([]byte(`{"topology":"1n2l1c1t","steps":[{"cgroups":[{"name":"p/a","workers":1,"work":{"type":"spin"}},{"name":"b","workers":1,"work":{"type":"spin"}}]},
		{"ops":[{"op":"swap_cpusets","cgroup":"p/a","with":"b","every_ms":50},{"op":"set_affinity","cgroup":"b","cycle":["random","llc:1"]},
		{"op":"set_policy","cgroup":"b","policy":"fifo","priority":5},{"op":"freeze_cgroup","cgroup":"p/a"}]},{"ops":[{"op":"thaw_cgroup","cgroup":"p/a"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		// A valid scenario re-encodes into a valid scenario, and every
		// cpuset it names resolves or fails cleanly on a small topology.
		out, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-encoded scenario invalid: %v\n%s", err, out)
		}
		topo := &Topology{Online: []int{0, 1}, LLCs: [][]int{{0, 1}}, Nodes: [][]int{{0, 1}}}
		_ = s.CheckTopology(topo)
		for _, st := range s.Steps {
			for _, c := range st.Cgroups {
				// A validated work's derived figures are sane.
				if g := c.Work.GroupSize(); g < 1 || g > 64 || c.Work.MaxBlock() < 0 || c.Work.MemoryKB()*c.Workers > MaxWorkMemoryKB {
					t.Fatalf("work %+v: group %d, block %d, memory %d KiB", c.Work, g, c.Work.MaxBlock(), c.Work.MemoryKB())
				}
				cs, err := ParseCpuset(c.Cpuset)
				if err != nil {
					t.Fatalf("validated cpuset %q fails to parse: %v", c.Cpuset, err)
				}
				if cpus, err := cs.Resolve(topo); err == nil && len(cpus) == 0 {
					t.Fatalf("cpuset %q resolved to nothing without an error", c.Cpuset)
				}
			}
		}
	})
}

// TestCatalogFitsItsTopology: every catalog scenario validates and fits
// the default 2-CPU guest, or else says in its description what it needs
// and fits a guest with that (2 LLCs of one CPU each), and no catalog
// scenario hides a need the description does not name.
func TestCatalogFitsItsTopology(t *testing.T) {
	small, err := TopologyOf("1n1l2c1t")
	if err != nil {
		t.Fatal(err)
	}
	twoLLC, err := TopologyOf("1n2l1c1t")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Names() {
		s, err := Lookup(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if s.Name != n || s.Description == "" || strings.Contains(s.Description, "\n") {
			t.Errorf("%s: name %q, description must be one non-empty line", n, s.Name)
		}
		if s.Topology != "" {
			// It names the guest it needs (TestTopologyOfAndCheck checks that it fits).
			continue
		}
		err = s.CheckTopology(small)
		needsLLC := strings.Contains(s.Description, "Needs 2 LLCs") || strings.Contains(s.Description, "Needs a guest with 2 LLCs")
		switch {
		case err == nil && needsLLC:
			t.Errorf("%s: says it needs 2 LLCs but fits one", n)
		case err != nil && !needsLLC:
			t.Errorf("%s: does not fit 2 CPUs in 1 LLC and does not say why: %v", n, err)
		case err != nil:
			if err := s.CheckTopology(twoLLC); err != nil {
				t.Errorf("%s: does not fit 2 LLCs either: %v", n, err)
			}
		}
	}
	if len(Names()) < 30 {
		t.Errorf("catalog has %d scenarios", len(Names()))
	}
}
