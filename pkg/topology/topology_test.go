package topology

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Shape
		wantErr string
	}{
		{in: "1n1l1c1t", want: Shape{1, 1, 1, 1}},
		{in: "1n2l2c2t", want: Shape{1, 2, 2, 2}},
		{in: "2n4l2c1t", want: Shape{2, 4, 2, 1}},
		{in: "2N8L4C1T", want: Shape{2, 8, 4, 1}},
		{in: "1n1l1024c1t", want: Shape{1, 1, 1024, 1}},
		{in: "", wantErr: "want NnNlNcNt"},
		{in: "2n4l2c", wantErr: "want NnNlNcNt"},
		{in: "n4l2c1t", wantErr: "want NnNlNcNt"},
		{in: "2l4n2c1t", wantErr: "want NnNlNcNt"},
		{in: "2n4l2c1t ", wantErr: "unexpected"},
		{in: "2n3l2c1t", wantErr: "do not split evenly"},
		{in: "0n1l1c1t", wantErr: "at least 1"},
		{in: "1n1l0c1t", wantErr: "at least 1"},
		{in: "1n1l2048c1t", wantErr: "at most 1024"},
		{in: "1n2l512c2t", wantErr: "2048 vCPUs"},
		{in: "65n65l1c1t", wantErr: "NUMA nodes"},
		{in: "1n1l99999999c1t", wantErr: "too large"},
		{in: "-1n1l1c1t", wantErr: "want NnNlNcNt"},
		{in: "+1n1l1c1t", wantErr: "want NnNlNcNt"},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("Parse(String()) of %q = %+v, %v", tc.in, back, err)
		}
	}
}

func TestFromCPUs(t *testing.T) {
	s, err := FromCPUs(6)
	if err != nil || s != (Shape{1, 1, 6, 1}) {
		t.Fatalf("FromCPUs(6) = %+v, %v", s, err)
	}
	for _, n := range []int{0, -1, MaxCPUs + 1} {
		if _, err := FromCPUs(n); err == nil {
			t.Errorf("FromCPUs(%d) succeeded", n)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1n1l1c1t", "2n4l2c1t", "1n2l2c2t", "4n8l8c2t", "2n3l1c1t", "", "1n", "9999999n1l1c1t", "1N1L1C1T", "0n0l0c0t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := Parse(s)
		if err != nil {
			return
		}
		if err := sh.Validate(); err != nil {
			t.Fatalf("Parse(%q) returned invalid shape %+v: %v", s, sh, err)
		}
		if back, err := Parse(sh.String()); err != nil || back != sh {
			t.Fatalf("round trip of %q: %+v, %v", s, back, err)
		}
		topo, err := New(sh)
		if err != nil {
			t.Fatalf("New(%v): %v", sh, err)
		}
		if len(topo.CPUs) != sh.NumCPUs() {
			t.Fatalf("%v: %d CPUs, want %d", sh, len(topo.CPUs), sh.NumCPUs())
		}
		seen := map[uint32]bool{}
		for _, c := range topo.CPUs {
			if seen[c.APICID] {
				t.Fatalf("%v: APIC ID %#x repeats", sh, c.APICID)
			}
			seen[c.APICID] = true
		}
	})
}

// TestLayout checks the APIC ID fields against each vCPU's place, and that
// the IDs are unique and increasing (the guest numbers CPUs in MADT order).
func TestLayout(t *testing.T) {
	for _, in := range []string{"1n1l1c1t", "1n2l2c2t", "2n4l2c1t", "2n4l4c2t", "4n12l3c2t", "1n1l5c3t"} {
		s, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		topo, err := New(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := topo.CPUsPerNode() * s.Nodes; got != s.NumCPUs() {
			t.Fatalf("%s: CPUsPerNode*Nodes = %d, want %d", in, got, s.NumCPUs())
		}
		for i, c := range topo.CPUs {
			mask := func(n uint) uint32 { return 1<<n - 1 }
			if got := int(c.APICID & mask(topo.ThreadBits)); got != c.Thread {
				t.Errorf("%s cpu %d: thread field %d, want %d", in, i, got, c.Thread)
			}
			if got := int(c.APICID >> topo.ThreadBits & mask(topo.CoreBits)); got != c.Core {
				t.Errorf("%s cpu %d: core field %d, want %d", in, i, got, c.Core)
			}
			if got := int(c.APICID >> topo.LLCShift() & mask(topo.LLCBits)); got != c.LLCInNode {
				t.Errorf("%s cpu %d: LLC field %d, want %d", in, i, got, c.LLCInNode)
			}
			if got := int(c.APICID >> topo.PackageShift()); got != c.Node {
				t.Errorf("%s cpu %d: package field %d, want node %d", in, i, got, c.Node)
			}
			if c.Thread >= s.ThreadsPerCore || c.Core >= s.CoresPerLLC || c.LLCInNode >= s.LLCsPerNode() || c.Node >= s.Nodes {
				t.Errorf("%s cpu %d: out-of-range place %+v", in, i, c)
			}
			if i > 0 && topo.CPUs[i-1].APICID >= c.APICID {
				t.Errorf("%s: APIC IDs not increasing at cpu %d", in, i)
			}
		}
		for n := range s.Nodes {
			if got := len(topo.NodeCPUs(n)); got != topo.CPUsPerNode() {
				t.Errorf("%s node %d: %d CPUs, want %d", in, n, got, topo.CPUsPerNode())
			}
		}
	}
}

func TestX2APIC(t *testing.T) {
	// 4 nodes x 2 LLCs x 20 cores x 2 threads: core field 5 bits, so the
	// package field starts at bit 7 and node 2 begins at APIC ID 256.
	topo, err := New(Shape{Nodes: 4, LLCs: 8, CoresPerLLC: 20, ThreadsPerCore: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !topo.NeedsX2APIC() {
		t.Fatalf("max APIC ID %#x, want x2APIC", topo.MaxAPICID())
	}
	if c := topo.CPUs[topo.NodeCPUs(2)[0]]; c.APICID != 2<<7 {
		t.Errorf("first CPU of node 2 has APIC ID %#x, want %#x", c.APICID, 2<<7)
	}
	small, _ := New(Shape{Nodes: 2, LLCs: 4, CoresPerLLC: 2, ThreadsPerCore: 1})
	if small.NeedsX2APIC() {
		t.Errorf("2n4l2c1t wants x2APIC (max ID %#x)", small.MaxAPICID())
	}
}

func TestAssignMemory(t *testing.T) {
	const MiB = 1 << 20
	topo, err := New(Shape{Nodes: 2, LLCs: 2, CoresPerLLC: 1, ThreadsPerCore: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Low RAM, RAM to the 3 GiB hole, RAM above 4 GiB.
	ram := []Range{{Base: 0, Size: 0x9fc00}, {Base: 1 * MiB, Size: 3072*MiB - 1*MiB}, {Base: 4096 * MiB, Size: 1024 * MiB}}
	got, err := topo.AssignMemory(ram)
	if err != nil {
		t.Fatal(err)
	}
	var per [2]uint64
	var total uint64
	for i, r := range got {
		per[r.Node] += r.Size
		total += r.Size
		if i > 0 && (got[i-1].End() > r.Base || got[i-1].Node > r.Node) {
			t.Errorf("ranges out of order at %d: %+v", i, got)
		}
	}
	var want uint64
	for _, r := range ram {
		want += r.Size
	}
	if total != want {
		t.Errorf("assigned %d bytes, want %d", total, want)
	}
	if per[0] > per[1] || per[1]-per[0] >= 4*nodeAlign {
		t.Errorf("uneven split %d / %d", per[0], per[1])
	}
	// The boundary splits the middle range.
	if len(got) != 4 || got[1].Node != 0 || got[2].Node != 1 || got[1].End() != got[2].Base || got[2].Base%nodeAlign != 0 {
		t.Errorf("want the middle range split at a 2 MiB-aligned node boundary: %+v", got)
	}

	if _, err := topo.AssignMemory([]Range{{Base: 0, Size: 2 * MiB}}); err == nil {
		t.Error("2 MiB over 2 nodes succeeded")
	}
	if _, err := topo.AssignMemory([]Range{{Base: 0, Size: 8 * MiB}, {Base: 4 * MiB, Size: 8 * MiB}}); err == nil {
		t.Error("overlapping ranges accepted")
	}
}

func TestFromText(t *testing.T) {
	topo, err := FromText("2n4l2c1t")
	if err != nil || len(topo.CPUs) != 8 {
		t.Fatalf("FromText(2n4l2c1t) = %v, %v; want 8 CPUs", topo, err)
	}
	for _, bad := range []string{"", "2n3l1c1t", "1n1l1c"} {
		if _, err := FromText(bad); err == nil {
			t.Errorf("FromText(%q) accepted", bad)
		}
	}
}

// TestPresets: every preset is a valid shape whose vCPU count matches
// upstream's table, and names are unique.
func TestPresets(t *testing.T) {
	cpus := map[string]int{"tiny-1llc": 4, "tiny-2llc": 4, "odd-3llc": 9, "odd-5llc": 15, "odd-7llc": 14, "smt-2llc": 8,
		"smt-3llc": 12, "medium-4llc": 32, "medium-8llc": 64, "large-4llc": 128, "large-8llc": 128, "near-max-llc": 240,
		"max-cpu": 252, "medium-4llc-nosmt": 32, "medium-8llc-nosmt": 64, "large-4llc-nosmt": 128, "large-8llc-nosmt": 128,
		"near-max-llc-nosmt": 240, "max-cpu-nosmt": 252, "numa2-4llc": 16, "numa2-8llc": 128, "numa2-8llc-nosmt": 128,
		"numa4-8llc": 32, "numa4-12llc": 192}
	ps := Presets()
	if len(ps) != 24 || len(cpus) != 24 {
		t.Fatalf("%d presets, want 24", len(ps))
	}
	for _, p := range ps {
		if err := p.Shape.Validate(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		if p.Shape.NumCPUs() != cpus[p.Name] {
			t.Errorf("%s: %d CPUs, want %d", p.Name, p.Shape.NumCPUs(), cpus[p.Name])
		}
		if q, err := LookupPreset(p.Name); err != nil || q != p {
			t.Errorf("LookupPreset(%s) = %v %v", p.Name, q, err)
		}
	}
	if _, err := LookupPreset("huge"); err == nil {
		t.Error("unknown preset found")
	}
}
