package topology

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"testing"
)

func vendorRegs(v string) (ebx, edx, ecx uint32) {
	b := []byte(v)
	return binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint32(b[4:8]), binary.LittleEndian.Uint32(b[8:12])
}

// hostCPUID builds a KVM_GET_SUPPORTED_CPUID-like list for a host of the
// given vendor and family, including host topology leaves that must not
// leak into the guest.
func hostCPUID(vendor string, family uint32, maxBasic uint32) []CPUIDEntry {
	ebx, edx, ecx := vendorRegs(vendor)
	fam := family << 8
	if family > 0xf {
		fam = 0xf<<8 | (family-0xf)<<20
	}
	es := []CPUIDEntry{
		{Function: 0, EAX: maxBasic, EBX: ebx, ECX: ecx, EDX: edx},
		{Function: 1, EAX: fam | 0x10, EBX: 0x3f<<24 | 64<<16 | 0x0800, ECX: 1 << 21, EDX: 1<<28 | 1},
		{Function: 0xB, Index: 0, Flags: 1, EAX: 1, EBX: 2, ECX: 0x100, EDX: 0x3f},
		{Function: 0xB, Index: 1, Flags: 1, EAX: 7, EBX: 64, ECX: 0x201, EDX: 0x3f},
		{Function: 0x80000000, EAX: 0x80000008},
		{Function: 0x80000001},
		{Function: 0x80000008, EAX: 0x3030, ECX: 0x603f},
	}
	if vendor == "GenuineIntel" {
		for i, c := range []uint32{0x121, 0x122, 0x143, 0x163} {
			es = append(es, CPUIDEntry{Function: 4, Index: uint32(i), Flags: 1, EAX: c | 0x3f<<26 | 0x7f<<14, EBX: 0x01c0003f, ECX: 0x3f})
		}
	} else {
		es = append(es, CPUIDEntry{Function: 0x80000026, Index: 0, Flags: 1, EAX: 1, EBX: 2, ECX: 0x100})
	}
	return es
}

// guestView derives, like the Linux 6.12 x86 topology and cacheinfo code,
// each CPU's package, LLC and core IDs from its CPUID entries alone.
type guestView struct{ pkg, llc, core, die uint32 }

func get(t *testing.T, es []CPUIDEntry, fn, idx uint32) CPUIDEntry {
	t.Helper()
	e, ok := find(es, fn, idx)
	if !ok {
		return CPUIDEntry{}
	}
	return e
}

func countOrder(n uint32) uint {
	if n <= 1 {
		return 0
	}
	return uint(bits.Len32(n - 1))
}

func deriveGuestView(t *testing.T, es []CPUIDEntry) (guestView, uint32) {
	t.Helper()
	maxBasic := get(t, es, 0, 0).EAX
	leaf := uint32(0xB)
	if maxBasic >= 0x1F && get(t, es, 0x1F, 0).EBX&0xffff != 0 {
		leaf = 0x1F
	}
	var apic uint32
	var smtShift, pkgShift, dieShift uint32
	haveDie := false
	for sub := uint32(0); ; sub++ {
		e := get(t, es, leaf, sub)
		typ := e.ECX >> 8 & 0xff
		if e.EBX&0xffff == 0 || typ == 0 {
			if sub == 0 {
				t.Fatalf("leaf %#x subleaf 0 invalid", leaf)
			}
			break
		}
		if e.ECX&0xff != sub {
			t.Errorf("leaf %#x subleaf %d: ECX[7:0] = %d", leaf, sub, e.ECX&0xff)
		}
		if sub == 0 {
			apic = e.EDX
		} else if e.EDX != apic {
			t.Errorf("leaf %#x subleaf %d: x2APIC ID %#x != %#x", leaf, sub, e.EDX, apic)
		}
		switch typ {
		case levelSMT:
			smtShift = e.EAX & 0x1f
		case levelDie:
			dieShift, haveDie = e.EAX&0x1f, true
		}
		pkgShift = e.EAX & 0x1f
		if sub > 8 {
			t.Fatalf("leaf %#x never terminates", leaf)
		}
	}
	if l1 := get(t, es, 1, 0); l1.EBX>>24 != apic&0xff {
		t.Errorf("leaf 1 APIC ID %#x, leaf %#x says %#x", l1.EBX>>24, leaf, apic)
	}
	v := guestView{pkg: apic >> pkgShift, core: apic >> smtShift, die: apic >> pkgShift}
	if haveDie {
		v.die = apic >> dieShift
	}
	if vendorOf(es) == VendorIntel {
		llcSeen := false
		for sub := uint32(0); sub < 16; sub++ {
			e := get(t, es, 4, sub)
			if e.EAX&0x1f == 0 {
				break
			}
			if e.EAX>>5&7 == 3 {
				n := (e.EAX>>14&0xfff + 1)
				v.llc, llcSeen = apic>>countOrder(n), true
			}
		}
		if !llcSeen {
			t.Fatal("leaf 4 has no L3")
		}
		return v, apic
	}
	// AMD.
	if get(t, es, 0x80000001, 0).ECX&(1<<22) == 0 {
		t.Fatal("AMD guest without TopologyExtensions")
	}
	if maxExt := get(t, es, 0x80000000, 0).EAX; maxExt < 0x8000001E {
		t.Fatalf("max extended leaf %#x hides 0x8000001E", maxExt)
	}
	if e := get(t, es, 0x80000026, 0); e.EBX != 0 {
		t.Errorf("host leaf 0x80000026 leaked into the guest: %+v", e)
	}
	l1 := get(t, es, 1, 0)
	family := l1.EAX >> 8 & 0xf
	if family == 0xf {
		family += l1.EAX >> 20 & 0xff
	}
	e1e := get(t, es, 0x8000001E, 0)
	if e1e.EAX != apic {
		t.Errorf("0x8000001E EAX %#x, want APIC ID %#x", e1e.EAX, apic)
	}
	if family < 0x17 {
		v.llc = e1e.ECX & 0xff
		return v, apic
	}
	last := -1
	for sub := uint32(0); sub < 16; sub++ {
		if get(t, es, 0x8000001D, sub).EAX&0x1f == 0 {
			break
		}
		last = int(sub)
	}
	if last < 0 {
		t.Fatal("no 0x8000001D cache leaves")
	}
	n := get(t, es, 0x8000001D, uint32(last)).EAX>>14&0xfff + 1
	v.llc = apic >> countOrder(n)
	return v, apic
}

func TestCPUIDGuestDerivesShape(t *testing.T) {
	hosts := []struct {
		name             string
		vendor           string
		family, maxBasic uint32
	}{
		{"intel-leaf1f", "GenuineIntel", 6, 0x20},
		{"intel-leafb", "GenuineIntel", 6, 0x16},
		{"amd-zen4", "AuthenticAMD", 0x19, 0x10},
		{"amd-tcg-max", "AuthenticAMD", 6, 0xd},
	}
	shapes := []string{"1n1l1c1t", "1n2l2c2t", "2n4l2c1t", "2n4l4c2t", "1n1l5c3t", "2n6l3c2t"}
	for _, h := range hosts {
		for _, sh := range shapes {
			t.Run(h.name+"/"+sh, func(t *testing.T) {
				s, _ := Parse(sh)
				topo, err := New(s)
				if err != nil {
					t.Fatal(err)
				}
				host := hostCPUID(h.vendor, h.family, h.maxBasic)
				views := make([]guestView, len(topo.CPUs))
				for i, c := range topo.CPUs {
					es, err := topo.CPUID(host, i)
					if err != nil {
						t.Fatal(err)
					}
					v, apic := deriveGuestView(t, es)
					if apic != c.APICID {
						t.Fatalf("cpu %d: guest reads APIC ID %#x, want %#x", i, apic, c.APICID)
					}
					views[i] = v
				}
				for i, a := range topo.CPUs {
					for j, b := range topo.CPUs {
						va, vb := views[i], views[j]
						check := func(what string, guest, want bool) {
							if guest != want {
								t.Errorf("cpus %d,%d: guest says same %s = %v, want %v", i, j, what, guest, want)
							}
						}
						check("package", va.pkg == vb.pkg, a.Node == b.Node)
						check("LLC", va.llc == vb.llc, a.LLC == b.LLC)
						check("core", va.core == vb.core, a.LLC == b.LLC && a.Core == b.Core)
					}
				}
			})
		}
	}
}

func TestCPUIDLeaves(t *testing.T) {
	topo, _ := New(Shape{Nodes: 2, LLCs: 4, CoresPerLLC: 2, ThreadsPerCore: 2})
	host := hostCPUID("GenuineIntel", 6, 0x20)
	es, err := topo.CPUID(host, 13) // node 1, LLC 3 (1 in node), core 0, thread 1
	if err != nil {
		t.Fatal(err)
	}
	c := topo.CPUs[13]
	if c.Node != 1 || c.LLCInNode != 1 || c.Core != 0 || c.Thread != 1 {
		t.Fatalf("cpu 13 placed at %+v", c)
	}
	// thread 1 bit, core 1 bit, LLC 1 bit, package above bit 3.
	if c.APICID != 1<<3|1<<2|0<<1|1 {
		t.Fatalf("cpu 13 APIC ID %#x", c.APICID)
	}
	l1 := get(t, es, 1, 0)
	if l1.EBX>>16&0xff != 8 || l1.EDX&(1<<28) == 0 {
		t.Errorf("leaf 1 EBX %#x EDX %#x: want 8 IDs per package and HTT", l1.EBX, l1.EDX)
	}
	if l1.ECX&(1<<21) == 0 || l1.EBX&0xffff != 0x0800 {
		t.Errorf("leaf 1 lost host bits: %+v", l1)
	}
	for sub, want := range []struct{ eax, ebx, typ uint32 }{{1, 2, levelSMT}, {2, 4, levelCore}, {3, 8, levelDie}, {0, 0, levelInvalid}} {
		e := get(t, es, 0x1F, uint32(sub))
		if e.EAX != want.eax || e.EBX != want.ebx || e.ECX>>8 != want.typ || e.Flags&FlagSignificantIndex == 0 {
			t.Errorf("leaf 0x1F.%d = %+v, want EAX %d EBX %d type %d", sub, e, want.eax, want.ebx, want.typ)
		}
	}
	// Leaf 0xB has no die level: its core level spans the package.
	if e := get(t, es, 0xB, 1); e.EAX != 3 || e.EBX != 8 {
		t.Errorf("leaf 0xB.1 = %+v, want shift 3 and 8 CPUs", e)
	}
	var l3 CPUIDEntry
	for sub := uint32(0); sub < 8; sub++ {
		if e := get(t, es, 4, sub); e.EAX>>5&7 == 3 {
			l3 = e
		}
	}
	if share := l3.EAX>>14&0xfff + 1; share != 4 {
		t.Errorf("L3 shared by %d IDs, want 4 (one LLC)", share)
	}
	if cores := l3.EAX>>26 + 1; cores != 4 {
		t.Errorf("leaf 4 cores per package %d, want 4", cores)
	}
	if l3.ECX != 0x3f || l3.EBX != 0x01c0003f {
		t.Errorf("L3 geometry not the host's: %+v", l3)
	}
}

func TestCPUIDAMDLeaves(t *testing.T) {
	topo, _ := New(Shape{Nodes: 2, LLCs: 4, CoresPerLLC: 3, ThreadsPerCore: 2})
	es, err := topo.CPUID(hostCPUID("AuthenticAMD", 0x19, 0x10), 20) // node 1, LLC 3, core 1, thread 0
	if err != nil {
		t.Fatal(err)
	}
	c := topo.CPUs[20]
	e := get(t, es, 0x8000001E, 0)
	if e.EAX != c.APICID || e.EBX != uint32(c.CoreInPackage(topo))|1<<8 || e.ECX != 3|1<<8 {
		t.Errorf("0x8000001E = %+v for %+v", e, c)
	}
	if ext := get(t, es, 0x80000001, 0).ECX; ext&(1<<22) == 0 || ext&(1<<1) == 0 {
		t.Errorf("0x80000001 ECX %#x: want TopologyExtensions and CmpLegacy", ext)
	}
	if e := get(t, es, 0x80000008, 0); e.ECX>>12&0xf != uint32(topo.PackageShift()) || e.ECX&0xff != 11 || e.EAX != 0x3030 {
		t.Errorf("0x80000008 = %+v", e)
	}
	if len(findAll(es, 4)) != 0 {
		t.Errorf("AMD guest got Intel leaf 4 entries")
	}
	if n := len(findAll(es, 0x8000001D)); n != 5 {
		t.Errorf("%d 0x8000001D subleaves, want 4 caches + terminator", n)
	}
}

func findAll(es []CPUIDEntry, fn uint32) []CPUIDEntry {
	var out []CPUIDEntry
	for _, e := range es {
		if e.Function == fn {
			out = append(out, e)
		}
	}
	return out
}

func TestCPUIDErrors(t *testing.T) {
	topo, _ := New(Shape{1, 1, 2, 1})
	if _, err := topo.CPUID(hostCPUID("GenuineIntel", 6, 0x20), 2); err == nil {
		t.Error("vCPU out of range accepted")
	}
	if _, err := topo.CPUID(nil, 0); err == nil {
		t.Error("empty host CPUID accepted")
	}
}

func ExampleTopology_CPUs() {
	s, _ := Parse("2n4l2c1t")
	topo, _ := New(s)
	for _, c := range topo.CPUs {
		fmt.Printf("cpu%d node%d llc%d core%d apic=%#x\n", c.Index, c.Node, c.LLC, c.Core, c.APICID)
	}
	// Output:
	// cpu0 node0 llc0 core0 apic=0x0
	// cpu1 node0 llc0 core1 apic=0x1
	// cpu2 node0 llc1 core0 apic=0x2
	// cpu3 node0 llc1 core1 apic=0x3
	// cpu4 node1 llc2 core0 apic=0x4
	// cpu5 node1 llc2 core1 apic=0x5
	// cpu6 node1 llc3 core0 apic=0x6
	// cpu7 node1 llc3 core1 apic=0x7
}
