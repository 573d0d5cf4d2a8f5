package acpi

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/topology"
)

const MiB = 1 << 20

func build(t testing.TB, shape string, memMiB uint64) (*topology.Topology, []topology.NodeRange, *Tables) {
	t.Helper()
	topo, err := topology.FromText(shape)
	if err != nil {
		t.Fatal(err)
	}
	ram := []topology.Range{{Base: 0, Size: 0x9fc00}, {Base: MiB, Size: memMiB*MiB - MiB}}
	mem, err := topo.AssignMemory(ram)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Build(Config{Topology: topo, Memory: mem})
	if err != nil {
		t.Fatal(err)
	}
	return topo, mem, tb
}

// The shapes the issue names, plus one with x2APIC IDs (4n8l20c2t: the
// package field starts at bit 7, so nodes 2 and 3 have IDs above 254).
var shapes = []string{"1n1l1c1t", "1n2l2c2t", "2n4l2c1t", "2n4l8c2t", "4n8l20c2t"}

func TestBuildParseBack(t *testing.T) {
	for _, shape := range shapes {
		t.Run(shape, func(t *testing.T) {
			topo, mem, tb := build(t, shape, 2048)
			if tb.Base != DefaultBase || tb.RSDP != DefaultBase || len(tb.Blob) > MaxSize {
				t.Fatalf("blob at %#x, RSDP %#x, %d bytes", tb.Base, tb.RSDP, len(tb.Blob))
			}
			p, err := Parse(tb.Blob, tb.Base, tb.RSDP)
			if err != nil {
				t.Fatal(err)
			}
			if p.RSDPRevision != 2 || p.OEMID != oemID {
				t.Errorf("RSDP revision %d OEM %q", p.RSDPRevision, p.OEMID)
			}
			for _, sig := range []string{"XSDT", "RSDT", "FACP", "FACS", "DSDT", "APIC", "SRAT", "SLIT"} {
				tab, ok := p.Tables[sig]
				if !ok {
					t.Errorf("no %s", sig)
					continue
				}
				if a := p.Addr[sig]; a%8 != 0 || (sig == "FACS" && a%64 != 0) {
					t.Errorf("%s at unaligned %#x", sig, a)
				}
				if sig != "FACS" && !bytes.Equal(tab[10:16], []byte(oemID)) {
					t.Errorf("%s OEM ID %q", sig, tab[10:16])
				}
			}

			m, err := ParseMADT(p.Tables["APIC"])
			if err != nil {
				t.Fatal(err)
			}
			if len(m.CPUs) != len(topo.CPUs) {
				t.Fatalf("MADT lists %d CPUs, want %d", len(m.CPUs), len(topo.CPUs))
			}
			for i, c := range m.CPUs {
				want := topo.CPUs[i]
				if c.APICID != want.APICID || c.UID != uint32(i) || !c.Enabled || c.X2APIC != (want.APICID > topology.MaxXAPICID) {
					t.Errorf("MADT CPU %d = %+v, want APIC ID %#x", i, c, want.APICID)
				}
			}
			if len(m.IOAPICs) != 1 || m.IOAPICs[0] != (MADTIOAPIC{ID: IOAPICID, Addr: IOAPICAddr}) || m.LAPICAddr != LAPICAddr {
				t.Errorf("MADT IOAPICs %+v LAPIC %#x", m.IOAPICs, m.LAPICAddr)
			}
			wantNMIs := 1
			if topo.NeedsX2APIC() {
				wantNMIs = 2
			}
			if m.NMIs != wantNMIs || len(m.Overrides) != 1 || m.Overrides[0] != (IRQOverride{Source: 9, GSI: 9, Flags: 0xD}) {
				t.Errorf("MADT NMIs %d overrides %+v", m.NMIs, m.Overrides)
			}

			s, err := ParseSRAT(p.Tables["SRAT"])
			if err != nil {
				t.Fatal(err)
			}
			if len(s.CPUNode) != len(topo.CPUs) {
				t.Errorf("SRAT has %d CPUs, want %d", len(s.CPUNode), len(topo.CPUs))
			}
			for _, c := range topo.CPUs {
				if n, ok := s.CPUNode[c.APICID]; !ok || n != uint32(c.Node) {
					t.Errorf("SRAT: APIC ID %#x in node %d (%v), want %d", c.APICID, n, ok, c.Node)
				}
			}
			var perNode = make([]uint64, topo.Nodes)
			for i, r := range s.Memory {
				if r.Base != mem[i].Base || r.Size != mem[i].Size || r.Node != uint32(mem[i].Node) {
					t.Errorf("SRAT memory %d = %+v, want %+v", i, r, mem[i])
				}
				perNode[r.Node] += r.Size
			}
			for n, sz := range perNode {
				if sz < 2048*MiB/uint64(topo.Nodes)-8*MiB {
					t.Errorf("node %d has %d MiB", n, sz/MiB)
				}
			}

			d, err := ParseSLIT(p.Tables["SLIT"])
			if err != nil {
				t.Fatal(err)
			}
			if len(d) != topo.Nodes {
				t.Fatalf("SLIT %d localities", len(d))
			}
			for i := range d {
				for j := range d[i] {
					want := uint8(20)
					if i == j {
						want = 10
					}
					if d[i][j] != want {
						t.Errorf("SLIT[%d][%d] = %d", i, j, d[i][j])
					}
				}
			}

			f, err := ParseFADT(p.Tables["FACP"])
			if err != nil {
				t.Fatal(err)
			}
			if f.HardwareReduced || f.SCI != SCIIRQ || f.SMICommand != 0 ||
				f.PM1aEvt != PM1aEvtPort || f.PM1aEvt32 != PM1aEvtPort || f.PM1EvtLen != PM1aEvtLen ||
				f.PM1aCnt != PM1aCntPort || f.PM1aCnt32 != PM1aCntPort || f.PM1CntLen != PM1aCntLen ||
				f.ResetPort != ResetPort || f.ResetValue != ResetValue || f.FACS != p.Addr["FACS"] ||
				f.MajorRev != 6 || f.MinorRev != 5 || len(p.Tables["FACP"]) != 276 {
				t.Errorf("FADT %+v", f)
			}
			if !bytes.Contains(p.Tables["DSDT"], []byte("_S5_")) {
				t.Error("DSDT has no _S5_")
			}
		})
	}
}

func TestChecksums(t *testing.T) {
	_, _, tb := build(t, "2n4l2c1t", 1024)
	p, err := Parse(tb.Blob, tb.Base, tb.RSDP)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint8
	for _, c := range tb.Blob[:20] {
		sum += c
	}
	if sum != 0 {
		t.Errorf("RSDP first 20 bytes sum to %d", sum)
	}
	for sig, tab := range p.Tables {
		if sig != "FACS" && checksum(tab) != 0 {
			t.Errorf("%s checksum off", sig)
		}
	}
	// Any flipped byte in any table is caught.
	for sig, addr := range p.Addr {
		if sig == "FACS" {
			continue // no checksum
		}
		bad := bytes.Clone(tb.Blob)
		bad[addr-tb.Base+20]++
		if _, err := Parse(bad, tb.Base, tb.RSDP); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("corrupt %s: Parse error %v", sig, err)
		}
	}
	bad := bytes.Clone(tb.Blob)
	bad[30]++
	if _, err := Parse(bad, tb.Base, tb.RSDP); err == nil {
		t.Error("corrupt RSDP extended checksum accepted")
	}
}

func TestBuildErrors(t *testing.T) {
	s, _ := topology.Parse("2n2l1c1t")
	topo, _ := topology.New(s)
	mem, _ := topo.AssignMemory([]topology.Range{{Base: MiB, Size: 256 * MiB}})
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no topology", Config{}, "need a topology"},
		{"unaligned", Config{Topology: topo, Memory: mem, Base: 0xE0008}, "aligned"},
		{"too small", Config{Topology: topo, Memory: mem, MaxSize: 256}, "more than"},
		{"above 4G", Config{Topology: topo, Memory: mem, Base: 1<<32 - 256}, "4 GiB"},
		{"bad node", Config{Topology: topo, Memory: []topology.NodeRange{{Range: topology.Range{Size: MiB}, Node: 2}}}, "node 2"},
		{"bad override", Config{Topology: topo, Overrides: []IRQOverride{{Source: 16, GSI: 16}}}, "ISA IRQ"},
		{"slit rows", Config{Topology: topo, Distances: [][]uint8{{10}}}, "rows"},
		{"slit self", Config{Topology: topo, Distances: [][]uint8{{11, 20}, {20, 10}}}, "itself"},
		{"slit remote", Config{Topology: topo, Distances: [][]uint8{{10, 10}, {10, 10}}}, "11..254"},
		{"slit asym", Config{Topology: topo, Distances: [][]uint8{{10, 20}, {30, 10}}}, "differ"},
	}
	for _, tc := range cases {
		if _, err := Build(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	tb, err := Build(Config{Topology: topo, Memory: mem, Distances: [][]uint8{{10, 31}, {31, 10}}, Overrides: []IRQOverride{{Source: 0, GSI: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Parse(tb.Blob, tb.Base, tb.RSDP)
	d, _ := ParseSLIT(p.Tables["SLIT"])
	m, _ := ParseMADT(p.Tables["APIC"])
	if d[0][1] != 31 || len(m.Overrides) != 2 || m.Overrides[1].GSI != 2 {
		t.Errorf("custom SLIT %v / overrides %+v not kept", d, m.Overrides)
	}
}

func TestIsPowerOff(t *testing.T) {
	for v := 0; v < 1<<16; v++ {
		want := v&(1<<13) != 0 && (v>>10)&7 == 5
		if IsPowerOff(uint16(v)) != want {
			t.Errorf("IsPowerOff(%#x) = %v", v, !want)
		}
	}
	// ACPICA's legacy sleep writes SLP_TYP first, then SLP_EN with it.
	if IsPowerOff(S5SleepType<<10) || !IsPowerOff(S5SleepType<<10|1<<13) {
		t.Error("Linux's S5 sequence not recognised")
	}
}

// TestIasl disassembles every table with iasl -d (acpica-tools) and fails
// on any error or warning. iasl cannot read a lone RSDP, which Parse checks.
func TestIasl(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skip("SKIP: iasl not found (install acpica-tools): ACPI tables not checked by the reference disassembler")
	}
	for _, shape := range shapes {
		_, _, tb := build(t, shape, 4096)
		p, err := Parse(tb.Blob, tb.Base, tb.RSDP)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for sig, tab := range p.Tables {
			f := filepath.Join(dir, sig+".dat")
			if err := os.WriteFile(f, tab, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(iasl, "-d", f)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s %s: iasl -d: %v\n%s", shape, sig, err, out)
				continue
			}
			dsl, err := os.ReadFile(filepath.Join(dir, sig+".dsl"))
			if err != nil {
				t.Errorf("%s %s: no disassembly: %v\n%s", shape, sig, err, out)
				continue
			}
			for _, bad := range []string{"Error", "Warning", "Invalid", "Unknown", "Incorrect checksum", "**** "} {
				if strings.Contains(string(out), bad) || strings.Contains(string(dsl), bad) {
					t.Errorf("%s %s: iasl reports %q:\n%s", shape, sig, bad, dsl)
				}
			}
			if sig == "DSDT" && !strings.Contains(string(dsl), "Name (_S5, Package (0x02)") {
				t.Errorf("DSDT disassembly lacks _S5:\n%s", dsl)
			}
			if sig == "APIC" && strings.Contains(shape, "20c") && !strings.Contains(string(dsl), "Processor Local x2APIC") {
				t.Errorf("%s: no x2APIC entries in MADT disassembly", shape)
			}
		}
	}
}

func TestLargeTopologyFits(t *testing.T) {
	// 1024 vCPUs with x2APIC entries in MADT and SRAT still fit below 1 MiB.
	topo, err := topology.New(topology.Shape{Nodes: 8, LLCs: 64, CoresPerLLC: 8, ThreadsPerCore: 2})
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := topo.AssignMemory([]topology.Range{{Base: MiB, Size: 8192 * MiB}})
	tb, err := Build(Config{Topology: topo, Memory: mem})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(tb.Blob, tb.Base, tb.RSDP)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ParseMADT(p.Tables["APIC"])
	if len(m.CPUs) != 1024 {
		t.Errorf("%d CPUs", len(m.CPUs))
	}
}

func FuzzParse(f *testing.F) {
	for _, shape := range []string{"1n1l1c1t", "2n4l2c1t", "4n8l20c2t"} {
		_, _, tb := build(f, shape, 512)
		f.Add(tb.Blob)
	}
	f.Add([]byte("RSD PTR "))
	f.Fuzz(func(t *testing.T, blob []byte) {
		p, err := Parse(blob, DefaultBase, DefaultBase)
		if err != nil {
			return
		}
		for sig, tab := range p.Tables {
			if sig == "FACS" {
				continue
			}
			if checksum(tab) != 0 || binary.LittleEndian.Uint32(tab[4:]) != uint32(len(tab)) {
				t.Fatalf("%s accepted with bad checksum or length", sig)
			}
		}
		// The table decoders must not panic on whatever passed Parse.
		if tab, ok := p.Tables["APIC"]; ok {
			_, _ = ParseMADT(tab)
		}
		if tab, ok := p.Tables["SRAT"]; ok {
			_, _ = ParseSRAT(tab)
		}
		if tab, ok := p.Tables["SLIT"]; ok {
			_, _ = ParseSLIT(tab)
		}
		if tab, ok := p.Tables["FACP"]; ok {
			_, _ = ParseFADT(tab)
		}
	})
}
