package hosttopo_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
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
