package topology

import (
	"os"
	"strings"
	"testing"
)

// The fixture is GuestProbeScript's output from the fixture kernel booted
// under QEMU TCG with -smp 8,sockets=2,cores=2,threads=2 and one NUMA node
// per socket: in our terms 2n2l2c2t (QEMU puts the L3 at the socket).
func TestCheckGuestAgainstRealKernel(t *testing.T) {
	b, err := os.ReadFile("testdata/qemu-tcg-2sockets-2c-2t-2nodes.log")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseGuestProbe(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.CPUs) != 8 || len(v.Nodes) != 2 || len(v.Domains[5]) != 3 {
		t.Fatalf("parsed %d CPUs, %d nodes, %d domains for cpu5", len(v.CPUs), len(v.Nodes), len(v.Domains[5]))
	}
	match, _ := Parse("2n2l2c2t")
	topo, _ := New(match)
	if bad := topo.CheckGuest(v); len(bad) != 0 {
		t.Errorf("matching shape reported mismatches: %q", bad)
	}
	for shape, want := range map[string]string{
		"2n4l1c2t": "shared_cpu_list",      // LLCs of one core each
		"1n2l2c2t": "NUMA nodes",           // one node
		"2n2l4c1t": "thread_siblings_list", // no SMT
		"2n2l2c1t": "guest has 8 CPUs, want 4",
	} {
		s, _ := Parse(shape)
		topo, _ := New(s)
		bad := topo.CheckGuest(v)
		if !strings.Contains(strings.Join(bad, "\n"), want) {
			t.Errorf("%s: mismatches %q lack %q", shape, bad, want)
		}
	}
}

func TestExpectedDomains(t *testing.T) {
	for _, tc := range []struct {
		shape string
		cpu   int
		want  string
	}{
		{"1n1l1c1t", 0, "[]"},
		{"1n1l4c1t", 1, "[f]"},
		{"1n2l2c2t", 5, "[30 f0 ff]"},
		{"2n4l2c1t", 5, "[30 f0 ff]"},
		{"2n2l2c1t", 3, "[c f]"},
		{"1n2l1c2t", 2, "[c f]"},
	} {
		s, _ := Parse(tc.shape)
		topo, _ := New(s)
		if got := masks(topo.ExpectedDomains(topo.CPUs[tc.cpu])); got != tc.want {
			t.Errorf("%s cpu%d: domains %s, want %s", tc.shape, tc.cpu, got, tc.want)
		}
	}
}

func TestParseGuestProbeRejects(t *testing.T) {
	for _, in := range []string{
		"KTOPO cpu x pkg=0",
		"KTOPO sd 0 1 ff", // level 1 before level 0
		"KTOPO sd 0 0 zz",
		"KTOPO cpu 99999 pkg=0",
	} {
		if _, err := ParseGuestProbe(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParseGuestProbe(f *testing.F) {
	b, _ := os.ReadFile("testdata/qemu-tcg-2sockets-2c-2t-2nodes.log")
	f.Add(string(b))
	f.Add("KTOPO sd 0 0 ff,ffffffff\nKTOPO end")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseGuestProbe(s)
		if err != nil {
			return
		}
		topo, _ := New(Shape{2, 2, 2, 2})
		_ = topo.CheckGuest(v)
	})
}
