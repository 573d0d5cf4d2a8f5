package topology

import (
	"fmt"
	"sort"
)

// CPUIDEntry is one CPUID leaf/subleaf, laid out like KVM's
// kvm_cpuid_entry2 minus padding. The VMM converts to and from KVM's type.
type CPUIDEntry struct {
	Function, Index, Flags uint32
	EAX, EBX, ECX, EDX     uint32
}

// FlagSignificantIndex is KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry
// applies only to its Index (subleaf).
const FlagSignificantIndex = 1

// Vendor is the CPU vendor as leaf 0 reports it.
type Vendor int

// Vendors. Hygon follows AMD's topology leaves.
const (
	VendorOther Vendor = iota
	VendorIntel
	VendorAMD
)

func (v Vendor) String() string {
	switch v {
	case VendorIntel:
		return "Intel"
	case VendorAMD:
		return "AMD"
	}
	return "other"
}

// CPUID leaves this package writes.
const (
	leafBasic     = 0x0
	leafFeatures  = 0x1
	leafCache     = 0x4
	leafTopo      = 0xB
	leafTopoV2    = 0x1F
	leafExtMax    = 0x80000000
	leafExtFeat   = 0x80000001
	leafAddrSizes = 0x80000008
	leafAMDCache  = 0x8000001D
	leafAMDTopo   = 0x8000001E
	leafAMDExtTop = 0x80000026
)

// Topology level types in leaves 0xB and 0x1F.
const (
	levelInvalid = 0
	levelSMT     = 1
	levelCore    = 2
	levelDie     = 5
)

// vendorOf reads the vendor from leaf 0 of entries.
func vendorOf(entries []CPUIDEntry) Vendor {
	e, ok := find(entries, leafBasic, 0)
	if !ok {
		return VendorOther
	}
	switch string(le32(e.EBX)) + string(le32(e.EDX)) + string(le32(e.ECX)) {
	case "GenuineIntel":
		return VendorIntel
	case "AuthenticAMD", "HygonGenuine":
		return VendorAMD
	}
	return VendorOther
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func find(entries []CPUIDEntry, fn, index uint32) (CPUIDEntry, bool) {
	for _, e := range entries {
		if e.Function == fn && (e.Index == index || e.Flags&FlagSignificantIndex == 0) {
			return e, true
		}
	}
	return CPUIDEntry{}, false
}

// cache is one cache level as leaf 4 / 0x8000001D describe it, without the
// sharing fields this package computes.
type cache struct {
	eaxLow        uint32 // EAX[13:0]: type, level, self-initialising, fully associative
	ebx, ecx, edx uint32
}

func (c cache) level() uint32 { return c.eaxLow >> 5 & 7 }
func (c cache) kind() uint32  { return c.eaxLow & 0x1f }

// Cache types in EAX[4:0].
const (
	cacheData    = 1
	cacheInstr   = 2
	cacheUnified = 3
)

// defaultCache describes a cache of the given size in bytes the way leaf 4
// does: 64-byte lines, one partition, ways-1 in EBX[31:22], sets-1 in ECX.
func defaultCache(kind, level uint32, size, ways uint32) cache {
	const line = 64
	sets := size / (ways * line)
	return cache{
		eaxLow: kind | level<<5 | 1<<8, // self-initialising
		ebx:    (ways-1)<<22 | (line - 1),
		ecx:    sets - 1,
	}
}

// caches returns the hierarchy the guest sees: the host's L1d, L1i, L2 and
// L3 descriptions where the host has them (sizes only; sharing is ours),
// else plain defaults. There is always an L3, which is the LLC.
func caches(entries []CPUIDEntry, leaf uint32) []cache {
	want := []struct {
		kind, level uint32
		def         cache
	}{
		{cacheData, 1, defaultCache(cacheData, 1, 32<<10, 8)},
		{cacheInstr, 1, defaultCache(cacheInstr, 1, 32<<10, 8)},
		{cacheUnified, 2, defaultCache(cacheUnified, 2, 1<<20, 16)},
		{cacheUnified, 3, defaultCache(cacheUnified, 3, 32<<20, 16)},
	}
	host := map[[2]uint32]cache{}
	for _, e := range entries {
		if e.Function != leaf {
			continue
		}
		c := cache{eaxLow: e.EAX & 0x3fff, ebx: e.EBX, ecx: e.ECX, edx: e.EDX}
		if c.kind() != 0 {
			host[[2]uint32{c.kind(), c.level()}] = c
		}
	}
	out := make([]cache, 0, len(want))
	for _, w := range want {
		if c, ok := host[[2]uint32{w.kind, w.level}]; ok {
			out = append(out, c)
		} else {
			out = append(out, w.def)
		}
	}
	return out
}

// CPUID returns the CPUID entries for vCPU cpu: the host's supported
// entries (as KVM_GET_SUPPORTED_CPUID reports them) with the topology
// leaves rewritten so the guest sees this topology. Leaves it does not
// concern itself with pass through unchanged.
func (t *Topology) CPUID(supported []CPUIDEntry, cpu int) ([]CPUIDEntry, error) {
	if cpu < 0 || cpu >= len(t.CPUs) {
		return nil, fmt.Errorf("vCPU %d out of range 0..%d", cpu, len(t.CPUs)-1)
	}
	c := t.CPUs[cpu]
	vendor := vendorOf(supported)
	basic, ok := find(supported, leafBasic, 0)
	if !ok {
		return nil, fmt.Errorf("host CPUID has no leaf 0")
	}
	if _, ok := find(supported, leafFeatures, 0); !ok {
		return nil, fmt.Errorf("host CPUID has no leaf 1")
	}
	maxBasic := basic.EAX
	maxExt := uint32(0)
	if e, ok := find(supported, leafExtMax, 0); ok {
		maxExt = e.EAX
	}
	if maxBasic < leafTopo {
		maxBasic = leafTopo // leaves in between read as zero
	}
	if vendor == VendorAMD && maxExt < leafAMDTopo {
		maxExt = leafAMDTopo
	}

	var out []CPUIDEntry
	for _, e := range supported {
		switch e.Function {
		case leafCache, leafTopo, leafTopoV2, leafAMDCache, leafAMDTopo, leafAMDExtTop:
			continue // rebuilt below (0x80000026 dropped so the guest uses 0xB)
		}
		out = append(out, e)
	}
	set := func(fn uint32, edit func(*CPUIDEntry)) {
		for i := range out {
			if out[i].Function == fn {
				edit(&out[i])
				return
			}
		}
		e := CPUIDEntry{Function: fn}
		edit(&e)
		out = append(out, e)
	}
	add := func(fn, index, eax, ebx, ecx, edx uint32) {
		out = append(out, CPUIDEntry{Function: fn, Index: index, Flags: FlagSignificantIndex, EAX: eax, EBX: ebx, ECX: ecx, EDX: edx})
	}

	pkgShift := uint32(t.PackageShift())
	perPkgIDs := uint32(1) << pkgShift // addressable IDs in a package
	set(leafBasic, func(e *CPUIDEntry) { e.EAX = maxBasic })
	set(leafFeatures, func(e *CPUIDEntry) {
		e.EBX = e.EBX&0x0000ffff | min(perPkgIDs, 255)<<16 | (c.APICID&0xff)<<24
		if perPkgIDs > 1 {
			e.EDX |= 1 << 28 // HTT: EBX[23:16] is valid
		} else {
			e.EDX &^= 1 << 28
		}
	})

	// Cache leaves: L1 and L2 per core, L3 per LLC.
	cacheLeaf := uint32(leafCache)
	if vendor == VendorAMD {
		cacheLeaf = leafAMDCache
	}
	hier := caches(supported, cacheLeaf)
	coresPerPkgIDs := uint32(1) << (t.CoreBits + t.LLCBits)
	for i, ch := range hier {
		share := uint32(1)<<t.ThreadBits - 1
		if ch.level() == 3 {
			share = uint32(1)<<t.LLCShift() - 1
		}
		eax := ch.eaxLow | min(share, 0xfff)<<14
		if cacheLeaf == leafCache {
			eax |= min(coresPerPkgIDs-1, 63) << 26
		}
		add(cacheLeaf, uint32(i), eax, ch.ebx, ch.ecx, ch.edx)
	}
	add(cacheLeaf, uint32(len(hier)), 0, 0, 0, 0)

	// Extended topology. Leaf 0xB knows only SMT and core, so its core
	// level spans the whole package; leaf 0x1F adds a die level per LLC.
	smtShift := uint32(t.ThreadBits)
	add(leafTopo, 0, smtShift, uint32(t.ThreadsPerCore), 0|levelSMT<<8, c.APICID)
	add(leafTopo, 1, pkgShift, uint32(t.CPUsPerNode()), 1|levelCore<<8, c.APICID)
	add(leafTopo, 2, 0, 0, 2|levelInvalid<<8, c.APICID)
	if maxBasic >= leafTopoV2 {
		add(leafTopoV2, 0, smtShift, uint32(t.ThreadsPerCore), 0|levelSMT<<8, c.APICID)
		n := uint32(1)
		if t.LLCBits > 0 {
			add(leafTopoV2, 1, uint32(t.LLCShift()), uint32(t.CPUsPerLLC()), 1|levelCore<<8, c.APICID)
			add(leafTopoV2, 2, pkgShift, uint32(t.CPUsPerNode()), 2|levelDie<<8, c.APICID)
			n = 3
		} else {
			add(leafTopoV2, 1, pkgShift, uint32(t.CPUsPerNode()), 1|levelCore<<8, c.APICID)
			n = 2
		}
		add(leafTopoV2, n, 0, 0, n|levelInvalid<<8, c.APICID)
	}

	if vendor == VendorAMD {
		set(leafExtMax, func(e *CPUIDEntry) { e.EAX = maxExt })
		set(leafExtFeat, func(e *CPUIDEntry) {
			e.ECX |= 1 << 22 // TopologyExtensions: 0x8000001D/0x8000001E are valid
			if t.CPUsPerNode() > 1 {
				e.ECX |= 1 << 1 // CmpLegacy
			} else {
				e.ECX &^= 1 << 1
			}
		})
		set(leafAddrSizes, func(e *CPUIDEntry) {
			if e.EAX == 0 {
				e.EAX = 0x3030 // 48-bit virtual and physical addresses
			}
			e.ECX = e.ECX&^0xf0ff | min(pkgShift, 15)<<12 | min(uint32(t.CPUsPerNode()-1), 255)
		})
		// Node ID: for families before 17h Linux takes the LLC ID from
		// it, so it numbers LLCs machine-wide, and "nodes per package"
		// is the LLCs per package (3 bits).
		add(leafAMDTopo, 0, c.APICID,
			uint32(c.CoreInPackage(t))&0xff|uint32(t.ThreadsPerCore-1)<<8,
			uint32(c.LLC)&0xff|min(uint32(t.LLCsPerNode()-1), 7)<<8, 0)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Function != out[j].Function {
			return out[i].Function < out[j].Function
		}
		return out[i].Index < out[j].Index
	})
	return out, nil
}
