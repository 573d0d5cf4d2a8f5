package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/acpi"
	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

// Topology glue: the machine's shape comes from pkg/topology, its ACPI
// tables from pkg/acpi. Every vCPU's KVM id is its APIC ID, so the
// guest's x2APIC IDs, the MADT and CPUID agree.

// bpACPIRSDPAddr is boot_params.acpi_rsdp_addr.
const bpACPIRSDPAddr = 0x070

// topologyOf returns the shape the run asks for: cfg.Topology, or
// VCPUs cores in one LLC of one node.
func topologyOf(cfg Config) (*topology.Topology, error) {
	if cfg.Topology != nil {
		if cfg.VCPUs != 0 && cfg.VCPUs != len(cfg.Topology.CPUs) {
			return nil, fmt.Errorf("topology %s has %d vCPUs, but %d were asked for", cfg.Topology.Shape, len(cfg.Topology.CPUs), cfg.VCPUs)
		}
		return cfg.Topology, nil
	}
	s, err := topology.FromCPUs(cfg.VCPUs)
	if err != nil {
		return nil, err
	}
	return topology.New(s)
}

// checkVCPULimits refuses a topology KVM cannot create.
func checkVCPULimits(sys *kvm.System, t *topology.Topology) error {
	maxVCPUs := sys.CheckExtension(kvm.CapMaxVCPUs)
	if maxVCPUs == 0 {
		maxVCPUs = sys.CheckExtension(kvm.CapNrVCPUs)
	}
	if maxVCPUs > 0 && len(t.CPUs) > maxVCPUs {
		return fmt.Errorf("topology %s needs %d vCPUs; this KVM allows %d", t.Shape, len(t.CPUs), maxVCPUs)
	}
	maxID := sys.CheckExtension(kvm.CapMaxVCPUID)
	if maxID == 0 {
		maxID = maxVCPUs
	}
	if maxID > 0 && int(t.MaxAPICID()) >= maxID {
		return fmt.Errorf("topology %s needs APIC ID %d; this KVM allows vCPU IDs below %d (use fewer LLCs or cores per LLC)", t.Shape, t.MaxAPICID(), maxID)
	}
	if t.NeedsX2APIC() {
		return fmt.Errorf("topology %s has APIC IDs above %d, which need x2APIC and a split irqchip; ktstr-boot does not set those up yet", t.Shape, topology.MaxXAPICID)
	}
	return nil
}

// topologyCPUID converts the guest's feature-shaped CPUID
// (guestFeatures) to pkg/topology's entries, once per VM.
func topologyCPUID(base []kvm.CPUIDEntry) []topology.CPUIDEntry {
	in := make([]topology.CPUIDEntry, len(base))
	for j, e := range base {
		in[j] = topology.CPUIDEntry{Function: e.Function, Index: e.Index, Flags: e.Flags, EAX: e.EAX, EBX: e.EBX, ECX: e.ECX, EDX: e.EDX}
	}
	return in
}

// vcpuCPUID is vCPU i's CPUID: base (topologyCPUID of guestFeatures) with
// pkg/topology's leaves for t, the only writer of those.
func vcpuCPUID(base []topology.CPUIDEntry, t *topology.Topology, i int) ([]kvm.CPUIDEntry, error) {
	shaped, err := t.CPUID(base, i)
	if err != nil {
		return nil, err
	}
	out := make([]kvm.CPUIDEntry, len(shaped))
	for j, e := range shaped {
		out[j] = kvm.CPUIDEntry{Function: e.Function, Index: e.Index, Flags: e.Flags, EAX: e.EAX, EBX: e.EBX, ECX: e.ECX, EDX: e.EDX}
	}
	return out, nil
}

// ramRanges are the e820 map's RAM entries as topology ranges.
func ramRanges(e820 []E820Entry) []topology.Range {
	var out []topology.Range
	for _, e := range e820 {
		if e.Type == E820RAM && e.Size > 0 {
			out = append(out, topology.Range{Base: e.Addr, Size: e.Size})
		}
	}
	return out
}

// installACPI builds the ACPI tables for t and the e820 map, writes them
// at acpi.DefaultBase (not RAM in the e820 map) and points the zero
// page's acpi_rsdp_addr at the RSDP.
func installACPI(mem *guestmem.Memory, t *topology.Topology, e820 []E820Entry) error {
	for _, e := range e820 {
		if e.Type == E820RAM && e.Addr < acpi.DefaultBase+acpi.MaxSize && e.Addr+e.Size > acpi.DefaultBase {
			return fmt.Errorf("e820 RAM %#x+%#x overlaps the ACPI area at %#x", e.Addr, e.Size, acpi.DefaultBase)
		}
	}
	nodes, err := t.AssignMemory(ramRanges(e820))
	if err != nil {
		return err
	}
	tables, err := acpi.Build(acpi.Config{Topology: t, Memory: nodes})
	if err != nil {
		return err
	}
	if err := mem.Write(tables.Base, tables.Blob); err != nil {
		return fmt.Errorf("write ACPI tables: %w", err)
	}
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], tables.RSDP)
	if err := mem.Write(zeroPageAddr+bpACPIRSDPAddr, p[:]); err != nil {
		return fmt.Errorf("write acpi_rsdp_addr: %w", err)
	}
	return nil
}
