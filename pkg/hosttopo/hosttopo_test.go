package hosttopo_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
)

func TestReadFakeTrees(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spec      fakesys.Spec
		wantLLCs  [][]int
		wantNodes []int // majority node of each LLC
		wantLevel int
		wantSMT   []int // siblings of CPU 0
	}{
		{name: "single-LLC (like the dev host)", spec: fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1},
			wantLLCs: [][]int{{0, 1}}, wantNodes: []int{0}, wantLevel: 3, wantSMT: []int{0}},
		{name: "2 nodes x 2 LLCs x 2 cores x SMT2", spec: fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2},
			// 8 cores; thread 1 of core k is CPU 8+k.
			wantLLCs:  [][]int{{0, 1, 8, 9}, {2, 3, 10, 11}, {4, 5, 12, 13}, {6, 7, 14, 15}},
			wantNodes: []int{0, 0, 1, 1}, wantLevel: 3, wantSMT: []int{0, 8}},
		{name: "no NUMA directory", spec: fakesys.Spec{Nodes: 0, LLCs: 3, Cores: 1, Threads: 1},
			wantLLCs: [][]int{{0}, {1}, {2}}, wantNodes: []int{0, 0, 0}, wantLevel: 3, wantSMT: []int{0}},
		{name: "no L3: per-core L2 is the LLC", spec: fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 2, NoL3: true},
			wantLLCs: [][]int{{0, 2}, {1, 3}}, wantNodes: []int{0, 0}, wantLevel: 2, wantSMT: []int{0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			lay, err := fakesys.Write(root, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			top, err := hosttopo.Read(root)
			if err != nil {
				t.Fatal(err)
			}
			if len(top.CPUs) != lay.NCPUs || len(top.Allowed) != lay.NCPUs {
				t.Fatalf("%d CPUs, %d allowed; want %d", len(top.CPUs), len(top.Allowed), lay.NCPUs)
			}
			var gotLLCs [][]int
			var gotNodes []int
			for i, l := range top.LLCs {
				if l.Index != i || l.Level != tc.wantLevel {
					t.Errorf("LLC %d: index %d level %d", i, l.Index, l.Level)
				}
				gotLLCs = append(gotLLCs, l.CPUs)
				gotNodes = append(gotNodes, l.Node)
				for _, c := range l.CPUs {
					if cpu, ok := top.CPU(c); !ok || cpu.LLC != i || cpu.Node != l.Node {
						t.Errorf("CPU %d: %+v, want LLC %d node %d", c, cpu, i, l.Node)
					}
				}
			}
			if !reflect.DeepEqual(gotLLCs, tc.wantLLCs) || !reflect.DeepEqual(gotNodes, tc.wantNodes) {
				t.Errorf("LLCs %v nodes %v; want %v %v", gotLLCs, gotNodes, tc.wantLLCs, tc.wantNodes)
			}
			if c0, _ := top.CPU(0); !reflect.DeepEqual(c0.Siblings, tc.wantSMT) {
				t.Errorf("CPU 0 siblings %v, want %v", c0.Siblings, tc.wantSMT)
			}
			nodeCPUs := 0
			for _, n := range top.Nodes {
				nodeCPUs += len(n.CPUs)
			}
			if nodeCPUs != lay.NCPUs {
				t.Errorf("nodes cover %d CPUs, want %d", nodeCPUs, lay.NCPUs)
			}
			if got := top.AllowedIn(0); !reflect.DeepEqual(got, tc.wantLLCs[0]) {
				t.Errorf("AllowedIn(0) = %v", got)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	root := t.TempDir()
	if _, err := hosttopo.Read(root); err == nil {
		t.Fatal("read an empty tree")
	}
	if _, err := fakesys.Write(root, fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 1, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "devices/system/cpu/cpu0/cache/index3/shared_cpu_list")
	if err := os.WriteFile(p, []byte("zero\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hosttopo.Read(root); err == nil {
		t.Fatal("accepted a corrupt shared_cpu_list")
	}
}

func TestReadRealHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu/online"); err != nil {
		t.Skip("SKIP: no /sys/devices/system/cpu/online on this machine: cannot read the real topology")
	}
	top, err := hosttopo.Read(hosttopo.DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(top.LLCs) == 0 || len(top.Allowed) != runtime.NumCPU() {
		t.Fatalf("%s; NumCPU %d", top, runtime.NumCPU())
	}
	t.Logf("this host: %s", top)
}

// TestLLCsFor: the LLC count a whole-LLC reservation needs for a number of
// CPUs, on uniform hosts read from fake trees and on a hand-built host
// with LLCs of different sizes and a partial affinity mask (where the
// count must hold the CPUs whichever LLCs are taken).
func TestLLCsFor(t *testing.T) {
	read := func(s fakesys.Spec) *hosttopo.Topology {
		root := t.TempDir()
		if _, err := fakesys.Write(root, s); err != nil {
			t.Fatal(err)
		}
		top, err := hosttopo.Read(root)
		if err != nil {
			t.Fatal(err)
		}
		return top
	}
	uneven := &hosttopo.Topology{
		LLCs: []hosttopo.LLC{{Index: 0, CPUs: []int{0, 1, 2, 3}}, {Index: 1, CPUs: []int{4, 5}}, {Index: 2, CPUs: []int{6, 7, 8, 9, 10, 11}}, {Index: 3, CPUs: []int{12}}},
		// CPU 12's LLC is not allowed at all; LLC 2 only half.
		Allowed: []int{0, 1, 2, 3, 4, 5, 6, 7, 8},
	}
	for _, tc := range []struct {
		name    string
		top     *hosttopo.Topology
		cpus    int
		want    int
		wantErr string
	}{
		{"1 LLC of 2, 1 CPU", read(fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1}), 1, 1, ""},
		{"1 LLC of 2, 2 CPUs", read(fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1}), 2, 1, ""},
		{"1 LLC of 2, 3 CPUs", read(fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1}), 3, 0, "3 CPUs do not fit in this host's LLCs: its 1 LLC(s) hold 2 CPU(s) this process may use (0-1)"},
		{"4 LLCs of 4 (SMT), 4 CPUs", read(fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2}), 4, 1, ""},
		{"4 LLCs of 4 (SMT), 5 CPUs", read(fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2}), 5, 2, ""},
		{"4 LLCs of 4 (SMT), 16 CPUs", read(fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2}), 16, 4, ""},
		{"4 LLCs of 4 (SMT), 17 CPUs", read(fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2}), 17, 0, "its 4 LLC(s) hold 16 CPU(s)"},
		// Allowed sizes 2, 3, 4: the smallest first.
		{"uneven, 2 CPUs", uneven, 2, 1, ""},
		{"uneven, 3 CPUs", uneven, 3, 2, ""},
		{"uneven, 5 CPUs", uneven, 5, 2, ""},
		{"uneven, 6 CPUs", uneven, 6, 3, ""},
		{"uneven, 9 CPUs", uneven, 9, 3, ""},
		{"uneven, 10 CPUs", uneven, 10, 0, "its 3 LLC(s) hold 9 CPU(s) this process may use (0-8)"},
		{"zero", uneven, 0, 0, "at least 1"},
		{"no LLCs", &hosttopo.Topology{}, 1, 0, "its 0 LLC(s) hold 0 CPU(s)"},
	} {
		got, err := tc.top.LLCsFor(tc.cpus)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: LLCsFor(%d) = %d, %v; want an error with %q", tc.name, tc.cpus, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: LLCsFor(%d) = %d, %v; want %d", tc.name, tc.cpus, got, err, tc.want)
		}
	}
}
