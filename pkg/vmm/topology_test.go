package vmm

import (
	"encoding/binary"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/acpi"
	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

func TestInstallACPI(t *testing.T) {
	s, _ := topology.Parse("2n4l2c1t")
	topo, _ := topology.New(s)
	mem := newMemoryFromBytes(make([]byte, 64<<20))
	e820 := e820Map(mem.Regions())
	if err := installACPI(mem, topo, e820); err != nil {
		t.Fatal(err)
	}
	rsdp, _ := mem.U64(zeroPageAddr + bpACPIRSDPAddr)
	blob, err := mem.Slice(acpi.DefaultBase, acpi.MaxSize)
	if err != nil {
		t.Fatal(err)
	}
	p, err := acpi.Parse(blob, acpi.DefaultBase, rsdp)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := acpi.ParseSRAT(p.Tables["SRAT"])
	if err != nil {
		t.Fatal(err)
	}
	// SRAT covers exactly the e820 RAM, split between the two nodes.
	var ram, covered uint64
	for _, r := range ramRanges(e820) {
		ram += r.Size
	}
	nodes := map[uint32]bool{}
	for _, m := range sr.Memory {
		covered += m.Size
		nodes[m.Node] = true
	}
	if covered != ram || len(nodes) != 2 || len(sr.CPUNode) != 8 {
		t.Errorf("SRAT covers %d of %d bytes over %d nodes, %d CPUs", covered, ram, len(nodes), len(sr.CPUNode))
	}
	// The ACPI area is not RAM to the guest.
	for _, e := range e820 {
		if e.Type == E820RAM && e.Addr < acpi.DefaultBase+acpi.MaxSize && e.Addr+e.Size > acpi.DefaultBase {
			t.Errorf("e820 RAM %+v overlaps the ACPI tables", e)
		}
	}
}

func TestVCPUCPUID(t *testing.T) {
	s, _ := topology.Parse("1n2l2c2t")
	topo, _ := topology.New(s)
	amd := func(r string) uint32 { return binary.LittleEndian.Uint32([]byte(r)) }
	supported := []kvm.CPUIDEntry{
		{Function: 0, EAX: 0xd, EBX: amd("Auth"), EDX: amd("enti"), ECX: amd("cAMD")},
		{Function: 1, EAX: 0x663},
		{Function: 0x40000001, EAX: 0x1234},
		{Function: 0x80000000, EAX: 0x80000008},
	}
	for i, c := range topo.CPUs {
		got, err := vcpuCPUID(topologyCPUID(guestFeatures(supported, i == 5)), topo, i)
		if err != nil {
			t.Fatal(err)
		}
		var sawTopo bool
		for _, e := range got {
			switch e.Function {
			case 1:
				if e.EBX>>24 != c.APICID || e.ECX&(1<<31) == 0 {
					t.Errorf("cpu%d leaf 1 %+v: want APIC ID %d and the hypervisor bit", i, e, c.APICID)
				}
			case 0x8000001E:
				sawTopo = e.EAX == c.APICID
			case 0x40000001:
				if (e.EDX&kvmHintsRealtime != 0) != (i == 5) {
					t.Errorf("cpu%d KVM_HINTS_REALTIME = %v", i, e.EDX&kvmHintsRealtime != 0)
				}
			}
		}
		if !sawTopo {
			t.Errorf("cpu%d: no 0x8000001E with its APIC ID", i)
		}
	}
}

func TestTopologyOf(t *testing.T) {
	topo, err := topologyOf(Config{VCPUs: 3})
	if err != nil || topo.Shape != (topology.Shape{Nodes: 1, LLCs: 1, CoresPerLLC: 3, ThreadsPerCore: 1}) {
		t.Errorf("VCPUs 3: %+v %v", topo, err)
	}
	s, _ := topology.Parse("2n2l1c1t")
	two, _ := topology.New(s)
	if _, err := topologyOf(Config{VCPUs: 3, Topology: two}); err == nil {
		t.Error("vCPU count disagreeing with the topology accepted")
	}
}

func TestACPIPM(t *testing.T) {
	m := &machine{ended: make(chan struct{})}
	var bus Bus
	if err := bus.Insert("ACPI PM1a", &acpiPM{powerOff: m.acpiPowerOff}, acpi.PM1aEvtPort, acpi.PMPortsEnd-acpi.PM1aEvtPort); err != nil {
		t.Fatal(err)
	}
	// The enable word sticks; status reads 0.
	bus.Write(acpi.PM1aEvtPort+2, []byte{0x20, 0x01})
	d := make([]byte, 4)
	bus.Read(acpi.PM1aEvtPort, d)
	if d[0] != 0 || d[1] != 0 || d[2] != 0x20 || d[3] != 0x01 {
		t.Errorf("PM1 event block reads %x", d)
	}
	// ACPICA's S5: SLP_TYP first, then SLP_EN with it, as words.
	bus.Write(acpi.PM1aCntPort, []byte{0x00, 5 << 2})
	if m.stopped.Load() {
		t.Fatal("stopped on SLP_TYP alone")
	}
	bus.Write(acpi.PM1aCntPort, []byte{0x00, 5<<2 | 1<<5})
	if !m.stopped.Load() || m.end.reason != ReasonPoweroff {
		t.Errorf("S5 write: stopped=%v reason %q", m.stopped.Load(), m.end.reason)
	}
	c := make([]byte, 2)
	bus.Read(acpi.PM1aCntPort, c)
	if c[1]&(1<<5) != 0 || c[1]>>2&7 != 5 {
		t.Errorf("PM1 control reads %x: SLP_TYP kept, SLP_EN clear", c)
	}
}
