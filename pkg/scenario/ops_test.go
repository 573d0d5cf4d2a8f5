package scenario

import (
	"reflect"
	"strings"
	"testing"
)

// spin2 is a step adding cgroups a and b, two spinners each.
const spin2 = `{"cgroups":[{"name":"a","workers":2,"work":{"type":"spin"}},{"name":"b","workers":2,"work":{"type":"spin"}}]}`

func TestOpErrors(t *testing.T) {
	cases := []struct {
		name, steps, want string
	}{
		{"unknown op lists all", `{"ops":[{"op":"explode"}]}`, "freeze_cgroup"},
		{"clear unknown cgroup", `{"ops":[{"op":"clear_cpuset","cgroup":"x"}]}`, `cgroup "x" does not exist`},
		{"clear no cgroup", `{"ops":[{"op":"clear_cpuset"}]}`, `needs "cgroup"`},
		{"clear with cpuset", spin2 + `,{"ops":[{"op":"clear_cpuset","cgroup":"a","cpuset":"0"}]}`, "takes no cpuset"},
		{"swap no with", spin2 + `,{"ops":[{"op":"swap_cpusets","cgroup":"a"}]}`, `needs "with"`},
		{"swap self", spin2 + `,{"ops":[{"op":"swap_cpusets","cgroup":"a","with":"a"}]}`, "itself"},
		{"swap unknown", spin2 + `,{"ops":[{"op":"swap_cpusets","cgroup":"a","with":"zz"}]}`, `"zz" does not exist`},
		{"with on other op", spin2 + `,{"ops":[{"op":"set_weight","cgroup":"a","weight":5,"with":"b"}]}`, "with only applies"},
		{"affinity bad spec", spin2 + `,{"ops":[{"op":"set_affinity","cgroup":"a","cpuset":"llc:x"}]}`, "want llc:I"},
		{"policy unknown", spin2 + `,{"ops":[{"op":"set_policy","cgroup":"a","policy":"deadline"}]}`, "other, batch, idle, fifo, rr, ext"},
		{"fifo no prio", spin2 + `,{"ops":[{"op":"set_policy","cgroup":"a","policy":"fifo"}]}`, "priority 0 out of range 1..99"},
		{"rr prio high", spin2 + `,{"ops":[{"op":"set_policy","cgroup":"a","policy":"rr","priority":100}]}`, "out of range 1..99"},
		{"batch prio", spin2 + `,{"ops":[{"op":"set_policy","cgroup":"a","policy":"batch","priority":3}]}`, "only to fifo and rr"},
		{"policy on weight op", spin2 + `,{"ops":[{"op":"set_weight","cgroup":"a","weight":5,"policy":"idle"}]}`, "only apply to set_policy"},
		{"freeze twice", spin2 + `,{"ops":[{"op":"freeze_cgroup","cgroup":"a"},{"op":"freeze_cgroup","cgroup":"a"}]}`, "already frozen"},
		{"thaw not frozen", spin2 + `,{"ops":[{"op":"thaw_cgroup","cgroup":"a"}]}`, "not frozen"},
		{"move into frozen", spin2 + `,{"ops":[{"op":"freeze_cgroup","cgroup":"b"},{"op":"move_workers","cgroup":"a","to":"b"}]}`, "thaw the cgroups first"},
		{"freeze cross pair", `{"cgroups":[{"name":"a","workers":1,"work":{"type":"pingpong","pair_with":"b"}},{"name":"b","workers":1,"work":{"type":"pingpong","pair_with":"a"}}]},{"ops":[{"op":"freeze_cgroup","cgroup":"a"}]}`, "wait forever"},
		{"every on freeze", spin2 + `,{"ops":[{"op":"freeze_cgroup","cgroup":"a","every_ms":100}]}`, "cannot repeat"},
		{"every too fast", spin2 + `,{"ops":[{"op":"set_weight","cgroup":"a","weight":5,"every_ms":1}]}`, "every_ms 1 out of range"},
		{"cycle on weight", spin2 + `,{"ops":[{"op":"set_weight","cgroup":"a","weight":5,"cycle":["0"]}]}`, "cycle only applies"},
		{"cycle and cpuset", spin2 + `,{"ops":[{"op":"set_cpuset","cgroup":"a","cpuset":"0","cycle":["0"]}]}`, "not both"},
		{"cycle bad", spin2 + `,{"ops":[{"op":"set_cpuset","cgroup":"a","cycle":["0","disjoint:3/2"]}]}`, "0 <= I < N"},
		{"random cpuset", spin2 + `,{"ops":[{"op":"set_cpuset","cgroup":"a","cpuset":"random"}]}`, `cpuset "random"`},
		{"nested too deep", `{"cgroups":[{"name":"a/b/c/d/e","workers":1,"work":{"type":"spin"}}]}`, "at most 4"},
		{"nested bad part", `{"cgroups":[{"name":"a//b","workers":1,"work":{"type":"spin"}}]}`, "each '/'-separated part"},
		{"nested abs", `{"cgroups":[{"name":"/a","workers":1,"work":{"type":"spin"}}]}`, "cgroup name"},
		{"nested dotdot", `{"cgroups":[{"name":"a/../../x","workers":1,"work":{"type":"spin"}}]}`, "cgroup name"},
		{"parent with workers", spin2 + `,{"cgroups":[{"name":"a/c","workers":1,"work":{"type":"spin"}}]}`, "has workers"},
		{"move into parent", `{"cgroups":[{"name":"p/c","workers":1,"work":{"type":"spin"}},{"name":"q","workers":1,"work":{"type":"spin"}}]},{"ops":[{"op":"move_workers","cgroup":"q","to":"p"}]}`, "leaf cgroups"},
		{"remove parent", `{"cgroups":[{"name":"p/c","workers":1,"work":{"type":"spin"}}]},{"ops":[{"op":"remove_cgroup","cgroup":"p"}]}`, "remove them first"},
		{"freeze parent", `{"cgroups":[{"name":"p/c","workers":1,"work":{"type":"spin"}}]},{"ops":[{"op":"freeze_cgroup","cgroup":"p"}]}`, "freeze the leaves"},
		{"child of frozen", spin2 + `,{"cgroups":[{"name":"e","workers":0,"work":{"type":"spin"}}],"ops":[{"op":"freeze_cgroup","cgroup":"e"},{"op":"add_cgroup","add":{"name":"e/f","workers":1,"work":{"type":"spin"}}}]}`, "is frozen"},
		{"implicit parent exists", `{"cgroups":[{"name":"p/c","workers":1,"work":{"type":"spin"}},{"name":"p","workers":0,"work":{"type":"spin"}}]}`, "already exists"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"steps":[` + c.steps + `]}`))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestOpsValid(t *testing.T) {
	cases := []struct{ name, steps string }{
		{"clear", spin2 + `,{"ops":[{"op":"clear_cpuset","cgroup":"a"}]}`},
		{"swap repeated", spin2 + `,{"ops":[{"op":"swap_cpusets","cgroup":"a","with":"b","every_ms":250}]}`},
		{"affinity random", spin2 + `,{"ops":[{"op":"set_affinity","cgroup":"a","cpuset":"random","every_ms":100}]}`},
		{"affinity clear", spin2 + `,{"ops":[{"op":"set_affinity","cgroup":"a"}]}`},
		{"affinity cycle", spin2 + `,{"ops":[{"op":"set_affinity","cgroup":"a","cycle":["0","random","disjoint:1/2"],"every_ms":200}]}`},
		{"cpuset cycle", spin2 + `,{"ops":[{"op":"set_cpuset","cgroup":"a","cycle":["disjoint:0/2","all"],"every_ms":500}]}`},
		{"policies", spin2 + `,{"ops":[{"op":"set_policy","cgroup":"a","policy":"fifo","priority":1},{"op":"set_policy","cgroup":"b","policy":"ext"},
			{"op":"set_policy","cgroup":"b","policy":"idle","every_ms":100},{"op":"set_policy","cgroup":"a","policy":"rr","priority":99}]}`},
		{"freeze thaw", spin2 + `,{"ops":[{"op":"freeze_cgroup","cgroup":"a"}]},{"ops":[{"op":"thaw_cgroup","cgroup":"a"},{"op":"move_workers","cgroup":"a","to":"b"}]}`},
		{"nested", `{"cgroups":[{"name":"p/c1","workers":1,"work":{"type":"spin"}},{"name":"p/c2/d","workers":1,"work":{"type":"spin"}}]},
			{"ops":[{"op":"set_cpuset","cgroup":"p","cpuset":"0"},{"op":"move_workers","cgroup":"p/c1","to":"p/c2/d"},{"op":"remove_cgroup","cgroup":"p/c1"}]},
			{"ops":[{"op":"freeze_cgroup","cgroup":"p/c2/d"}]}`},
		{"declared parent", `{"cgroups":[{"name":"p","workers":0,"work":{"type":"spin"}},{"name":"p/c","workers":2,"work":{"type":"spin"}}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(`{"steps":[` + c.steps + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			b, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := Parse(b)
			if err != nil || !reflect.DeepEqual(s, s2) {
				t.Fatalf("round trip: %v\n%s", err, b)
			}
		})
	}
}

func TestTopologyOfAndCheck(t *testing.T) {
	topo, err := TopologyOf("2n2l2c1t")
	if err != nil {
		t.Fatal(err)
	}
	want := &Topology{Online: []int{0, 1, 2, 3}, LLCs: [][]int{{0, 1}, {2, 3}}, Nodes: [][]int{{0, 1}, {2, 3}}}
	if !reflect.DeepEqual(topo, want) {
		t.Fatalf("got %+v, want %+v", topo, want)
	}
	if _, err := TopologyOf("2x"); err == nil {
		t.Fatal("bad shape accepted")
	}
	cases := []struct {
		topo, steps, want string
	}{
		{"1n1l2c1t", spin2, ""},
		{"1n1l2c1t", spin2 + `,{"ops":[{"op":"set_cpuset","cgroup":"a","cpuset":"llc:1"}]}`, "set_cpuset step 1 a: cpuset wants LLC 1 but the guest has 1 LLCs"},
		{"1n2l2c1t", spin2 + `,{"ops":[{"op":"set_cpuset","cgroup":"a","cpuset":"llc:1"}]}`, ""},
		{"1n1l2c1t", spin2 + `,{"ops":[{"op":"set_affinity","cgroup":"a","cpuset":"list:5"}]}`, "CPU 5, which is not online"},
		{"1n1l2c1t", spin2 + `,{"ops":[{"op":"set_affinity","cgroup":"a","cycle":["random","disjoint:0/3"]}]}`, "needs at least 3 CPUs"},
		{"1n1l2c1t", spin2 + `,{"ops":[{"op":"add_cgroup","add":{"name":"z","cpuset":"numa:1","workers":1,"work":{"type":"spin"}}}]}`, "NUMA node 1"},
		{"1n1l4c1t", `{"cgroups":[{"name":"a","cpuset":"disjoint:3/4","workers":1,"work":{"type":"spin"}}]}`, ""},
		{"1n1l2c1t", `{"cgroups":[{"name":"a","cpuset":"disjoint:3/4","workers":1,"work":{"type":"spin"}}]}`, "needs at least 4 CPUs"},
		{"9q", spin2, "topology \"9q\""},
	}
	for _, c := range cases {
		t.Run(c.topo+c.want, func(t *testing.T) {
			_, err := Parse([]byte(`{"topology":"` + c.topo + `","steps":[` + c.steps + `]}`))
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestCatalogOperations: the operation scenarios are in the catalog, each
// with a one-line description and a topology it validates against.
func TestCatalogOperations(t *testing.T) {
	ops := []string{"affinity_change", "affinity_cpuset_interplay", "affinity_pinned", "cgroup_add", "cgroup_freeze",
		"cgroup_freeze_pingpong", "cgroup_move_tasks", "cgroup_remove", "cpuset_apply", "cpuset_clear", "cpuset_cycle",
		"cpuset_resize", "cpuset_swap", "nested_cpuset", "nested_steady", "nested_task_move", "policy_batch_idle",
		"policy_ext", "policy_fifo"}
	for _, n := range ops {
		s, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if s.Topology == "" || s.Description == "" || strings.ContainsAny(s.Description, "\n\t") {
			t.Errorf("%s: wants a topology and a one-line description", n)
		}
		// One CPU fewer than the topology names must not fit: the
		// validation is real.
		topo, err := TopologyOf(s.Topology)
		if err != nil {
			t.Fatal(err)
		}
		small := &Topology{Online: topo.Online[:1], LLCs: [][]int{topo.Online[:1]}, Nodes: [][]int{topo.Online[:1]}}
		if err := s.CheckTopology(small); err == nil && n != "cgroup_add" && n != "affinity_change" && n != "cgroup_remove" && n != "nested_steady" &&
			n != "cgroup_freeze" && n != "cgroup_freeze_pingpong" && n != "policy_batch_idle" && n != "policy_fifo" && n != "policy_ext" && n != "nested_task_move" {
			t.Errorf("%s fits a 1-CPU guest, but names cpusets of a bigger one", n)
		}
	}
}
