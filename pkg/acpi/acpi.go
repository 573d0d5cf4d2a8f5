package acpi

import (
	"encoding/binary"
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/topology"
)

// Fixed addresses and ports of the machine the tables describe.
const (
	// DefaultBase is where the blob usually goes: the BIOS area a guest
	// also scans for the RSDP when boot_params.acpi_rsdp_addr is 0.
	DefaultBase = 0xE0000
	// MaxSize is the room from DefaultBase to 1 MiB.
	MaxSize = 0x100000 - DefaultBase

	LAPICAddr  = 0xFEE00000
	IOAPICAddr = 0xFEC00000
	IOAPICID   = 0
	// IOAPICPins is the in-kernel IOAPIC's pin count (GSIs 0..23).
	IOAPICPins = 24

	// PM1a event block (status word at PM1aEvtPort, enable word at
	// PM1aEvtPort+2) and PM1a control block (a word): the only ACPI
	// fixed hardware the guest gets. Reads may return 0, writes other
	// than a sleep request are ignored.
	PM1aEvtPort = 0x600
	PM1aEvtLen  = 4
	PM1aCntPort = 0x604
	PM1aCntLen  = 2
	// PMPortsEnd is one past the last PM port.
	PMPortsEnd = PM1aCntPort + PM1aCntLen

	// SCIIRQ is the (never raised) ACPI SCI; the MADT routes it to GSI 9
	// active-high, level, as PC firmware does, so an idle line is not
	// seen as asserted.
	SCIIRQ = 9

	// The reset register is the PC's reset control port: 0x06 there
	// (bit 2, "reset CPU") is a reboot.
	ResetPort  = 0xCF9
	ResetValue = 0x06

	// S5SleepType is the SLP_TYP the DSDT's \_S5 package announces.
	S5SleepType = 5
)

// Identification written into every table header.
const (
	oemID       = "KTSTR "
	oemRevision = 1
	creatorID   = "KTGO"
	creatorRev  = 1
)

// IsPowerOff reports whether a word written to PM1aCntPort asks for S5
// (soft off): SLP_EN (bit 13) set and SLP_TYP (bits 12:10) equal to 5.
func IsPowerOff(pm1Control uint16) bool {
	return pm1Control&(1<<13) != 0 && (pm1Control>>10)&7 == S5SleepType
}

// IRQOverride is a MADT interrupt source override: ISA IRQ Source arrives
// on GSI; Flags are MPS INTI flags (0 = bus defaults).
type IRQOverride struct {
	Source uint8
	GSI    uint32
	Flags  uint16
}

// Config is what Build needs.
type Config struct {
	Topology *topology.Topology
	// Memory is the guest RAM by node, as the e820 map lists it (see
	// topology.AssignMemory). Each range gets a SRAT memory entry.
	Memory []topology.NodeRange
	// Base is the guest-physical address of the blob: 16-byte aligned,
	// and Base+len(blob) must stay below 4 GiB (the RSDT holds 32-bit
	// pointers). Zero means DefaultBase.
	Base uint64
	// MaxSize bounds the blob; zero means MaxSize.
	MaxSize int
	// Distances is the SLIT matrix (Nodes x Nodes): 10 on the diagonal,
	// more than 10 elsewhere. Nil means 10 local, 20 remote.
	Distances [][]uint8
	// Overrides are MADT interrupt source overrides besides the SCI's,
	// which is always there. KVM's default GSI routing (no
	// KVM_SET_GSI_ROUTING) sends IRQ n to IOAPIC pin n, which is what a
	// guest assumes without overrides; a VMM that routes the PIT's IRQ 0
	// to pin 2, as PC firmware does, lists {0, 2, 0} here.
	Overrides []IRQOverride
}

// Tables is a built blob.
type Tables struct {
	// Base is the guest-physical address Blob must be copied to.
	Base uint64
	Blob []byte
	// RSDP is the guest-physical address of the RSDP, for
	// boot_params.acpi_rsdp_addr.
	RSDP uint64
}

// header is the 36-byte standard ACPI table header.
func header(sig string, length int, rev uint8, tableID string) []byte {
	b := make([]byte, 36, max(length, 36))
	copy(b[0:4], sig)
	binary.LittleEndian.PutUint32(b[4:], uint32(length))
	b[8] = rev
	copy(b[10:16], oemID)
	copy(b[16:24], fmt.Sprintf("%-8s", tableID))
	binary.LittleEndian.PutUint32(b[24:], oemRevision)
	copy(b[28:32], creatorID)
	binary.LittleEndian.PutUint32(b[32:], creatorRev)
	return b
}

// checksum is the byte that makes b sum to zero mod 256.
func checksum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return -s
}

// finish sets the length and checksum of a table built with header.
func finish(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	b[9] = 0
	b[9] = checksum(b)
	return b
}

func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// gasIO is a Generic Address Structure for an I/O port block of bits
// bits; the access size is left undefined (legacy), as ACPICA expects for
// the PM1 blocks, except for the byte-wide reset register.
func gasIO(port uint16, bits uint8) []byte {
	access := uint8(0)
	if bits == 8 {
		access = 1
	}
	b := []byte{1 /* SystemIO */, bits, 0, access}
	return le64(b, uint64(port))
}

// dsdt holds only Name (\_S5, Package (0x02) {0x05, 0x05}): what Linux
// needs to offer poweroff (S5 through the PM1a control register).
func dsdt() []byte {
	b := header("DSDT", 0, 2, "KTSRDSDT")
	b = append(b,
		0x08, '_', 'S', '5', '_', // NameOp "_S5_"
		0x12, 0x06, 0x02, // PackageOp, PkgLength 6, 2 elements
		0x0A, S5SleepType, 0x0A, S5SleepType) // BytePrefix 5, BytePrefix 5
	return finish(b)
}

// FADT flags.
const (
	fadtWBINVD      = 1 << 0
	fadtPwrButton   = 1 << 4 // no fixed power button
	fadtSlpButton   = 1 << 5 // no fixed sleep button
	fadtResetRegSup = 1 << 10

	bootArchVGANotPresent = 1 << 2
	bootArchNoCMOSRTC     = 1 << 5
)

// fadt is a revision 6.5, 276-byte FADT for a PC without PM hardware
// beyond the PM1a blocks. It is deliberately not hardware-reduced: Linux
// then keeps the legacy PIC, PIT and the ISA IRQs the serial ports and the
// command-line virtio-mmio device use (a hardware-reduced FADT drops them,
// and those devices lose their interrupts). No SMI command port: the guest
// is in ACPI mode from the start.
func fadt(dsdtAddr, facsAddr uint64) []byte {
	b := header("FACP", 276, 6, "KTSRFACP")
	b = b[:276]
	le := binary.LittleEndian
	le.PutUint32(b[36:], uint32(facsAddr))
	le.PutUint32(b[40:], uint32(dsdtAddr))
	le.PutUint16(b[46:], SCIIRQ)
	le.PutUint32(b[56:], PM1aEvtPort)
	le.PutUint32(b[64:], PM1aCntPort)
	b[88] = PM1aEvtLen
	b[89] = PM1aCntLen
	// C2/C3 not supported.
	le.PutUint16(b[96:], 101)
	le.PutUint16(b[98:], 1001)
	// IAPC_BOOT_ARCH: no VGA, no CMOS RTC, no 8042 (reboot=k still
	// writes port 0x64 directly), no legacy devices.
	le.PutUint16(b[109:], bootArchVGANotPresent|bootArchNoCMOSRTC)
	le.PutUint32(b[112:], fadtWBINVD|fadtPwrButton|fadtSlpButton|fadtResetRegSup)
	copy(b[116:128], gasIO(ResetPort, 8))
	b[128] = ResetValue
	b[131] = 5 // minor version: ACPI 6.5
	le.PutUint64(b[132:], facsAddr)
	le.PutUint64(b[140:], dsdtAddr)
	copy(b[148:160], gasIO(PM1aEvtPort, 8*PM1aEvtLen))
	copy(b[172:184], gasIO(PM1aCntPort, 8*PM1aCntLen))
	copy(b[268:276], "KTSTRGO ")
	return finish(b)
}

// facs is the 64-byte Firmware ACPI Control Structure a non-reduced FADT
// points at (no checksum; nothing in it is used for S5).
func facs() []byte {
	b := make([]byte, 64)
	copy(b, "FACS")
	binary.LittleEndian.PutUint32(b[4:], 64)
	b[32] = 2 // version
	return b
}

// MADT entry types.
const (
	madtLAPIC     = 0
	madtIOAPIC    = 1
	madtOverride  = 2
	madtLAPICNMI  = 4
	madtX2APIC    = 9
	madtX2APICNMI = 0xA

	madtPCATCompat = 1
	lapicEnabled   = 1
)

func madt(t *topology.Topology, overrides []IRQOverride) ([]byte, error) {
	b := header("APIC", 0, 5, "KTSRAPIC")
	b = le32(b, LAPICAddr)
	b = le32(b, madtPCATCompat)
	anyX2 := false
	for _, c := range t.CPUs {
		if c.APICID <= topology.MaxXAPICID {
			b = append(b, madtLAPIC, 8, uint8(c.Index), uint8(c.APICID))
			b = le32(b, lapicEnabled)
			continue
		}
		anyX2 = true
		b = append(b, madtX2APIC, 16, 0, 0)
		b = le32(b, c.APICID)
		b = le32(b, lapicEnabled)
		b = le32(b, uint32(c.Index))
	}
	b = append(b, madtIOAPIC, 12, IOAPICID, 0)
	b = le32(b, IOAPICAddr)
	b = le32(b, 0) // GSI base
	// The SCI: level-triggered, active high (flags: polarity 01, trigger 11).
	overrides = append([]IRQOverride{{Source: SCIIRQ, GSI: SCIIRQ, Flags: 0x000D}}, overrides...)
	for _, o := range overrides {
		if o.Source > 15 || o.GSI >= IOAPICPins {
			return nil, fmt.Errorf("interrupt override IRQ %d -> GSI %d: want an ISA IRQ (0-15) and a GSI below %d", o.Source, o.GSI, IOAPICPins)
		}
		b = append(b, madtOverride, 10, 0 /* ISA */, o.Source)
		b = le32(b, o.GSI)
		b = le16(b, o.Flags)
	}
	// NMI arrives on LINT1 of every processor.
	b = append(b, madtLAPICNMI, 6, 0xFF, 0, 0, 1)
	if anyX2 {
		b = append(b, madtX2APICNMI, 12, 0, 0)
		b = le32(b, 0xFFFFFFFF)
		b = append(b, 1, 0, 0, 0)
	}
	return finish(b), nil
}

// SRAT entry types.
const (
	sratLAPIC  = 0
	sratMemory = 1
	sratX2APIC = 2

	sratEnabled = 1
)

func srat(t *topology.Topology, mem []topology.NodeRange) ([]byte, error) {
	b := header("SRAT", 0, 3, "KTSRSRAT")
	b = le32(b, 1) // reserved, must be 1
	b = le64(b, 0)
	for _, c := range t.CPUs {
		if c.APICID <= topology.MaxXAPICID {
			b = append(b, sratLAPIC, 16, uint8(c.Node), uint8(c.APICID))
			b = le32(b, sratEnabled)
			b = append(b, 0, uint8(c.Node>>8), uint8(c.Node>>16), uint8(c.Node>>24))
			b = le32(b, 0) // clock domain
			continue
		}
		b = append(b, sratX2APIC, 24, 0, 0)
		b = le32(b, uint32(c.Node))
		b = le32(b, c.APICID)
		b = le32(b, sratEnabled)
		b = le32(b, 0) // clock domain
		b = le32(b, 0)
	}
	for _, r := range mem {
		if r.Node < 0 || r.Node >= t.Nodes {
			return nil, fmt.Errorf("memory range %#x+%#x belongs to node %d, but there are %d nodes", r.Base, r.Size, r.Node, t.Nodes)
		}
		if r.Size == 0 {
			continue
		}
		b = append(b, sratMemory, 40)
		b = le32(b, uint32(r.Node))
		b = le16(b, 0)
		b = le64(b, r.Base)
		b = le64(b, r.Size)
		b = le32(b, 0)
		b = le32(b, sratEnabled)
		b = le64(b, 0)
	}
	return finish(b), nil
}

func slit(nodes int, dist [][]uint8) ([]byte, error) {
	if dist == nil {
		dist = make([][]uint8, nodes)
		for i := range dist {
			dist[i] = make([]uint8, nodes)
			for j := range dist[i] {
				dist[i][j] = 20
			}
			dist[i][i] = 10
		}
	}
	if len(dist) != nodes {
		return nil, fmt.Errorf("SLIT distances: %d rows for %d nodes", len(dist), nodes)
	}
	b := header("SLIT", 0, 1, "KTSRSLIT")
	b = le64(b, uint64(nodes))
	for i, row := range dist {
		if len(row) != nodes {
			return nil, fmt.Errorf("SLIT distances: row %d has %d entries for %d nodes", i, len(row), nodes)
		}
		for j, d := range row {
			switch {
			case i == j && d != 10:
				return nil, fmt.Errorf("SLIT distance %d->%d is %d: a node's distance to itself must be 10", i, j, d)
			case i != j && (d <= 10 || d == 0xFF):
				return nil, fmt.Errorf("SLIT distance %d->%d is %d: remote distances must be 11..254", i, j, d)
			case dist[j][i] != d:
				return nil, fmt.Errorf("SLIT distances %d->%d and %d->%d differ", i, j, j, i)
			}
		}
		b = append(b, row...)
	}
	return finish(b), nil
}

// Build lays the tables out from cfg.Base: RSDP first (16-byte aligned),
// then DSDT, FADT, MADT, SRAT, SLIT, XSDT and RSDT, each 8-byte aligned.
func Build(cfg Config) (*Tables, error) {
	t := cfg.Topology
	if t == nil || len(t.CPUs) == 0 {
		return nil, fmt.Errorf("ACPI tables need a topology")
	}
	base := cfg.Base
	if base == 0 {
		base = DefaultBase
	}
	if base%16 != 0 {
		return nil, fmt.Errorf("ACPI base %#x is not 16-byte aligned", base)
	}
	limit := cfg.MaxSize
	if limit == 0 {
		limit = MaxSize
	}

	blob := make([]byte, 36) // the RSDP, filled in last
	place := func(table []byte) uint64 {
		for len(blob)%8 != 0 {
			blob = append(blob, 0)
		}
		addr := base + uint64(len(blob))
		blob = append(blob, table...)
		return addr
	}
	for (base+uint64(len(blob)))%64 != 0 {
		blob = append(blob, 0) // the FACS is 64-byte aligned
	}
	facsAddr := place(facs())
	dsdtAddr := place(dsdt())
	var listed []uint64
	listed = append(listed, place(fadt(dsdtAddr, facsAddr)))
	m, err := madt(t, cfg.Overrides)
	if err != nil {
		return nil, err
	}
	listed = append(listed, place(m))
	s, err := srat(t, cfg.Memory)
	if err != nil {
		return nil, err
	}
	listed = append(listed, place(s))
	sl, err := slit(t.Nodes, cfg.Distances)
	if err != nil {
		return nil, err
	}
	listed = append(listed, place(sl))

	x := header("XSDT", 0, 1, "KTSRXSDT")
	r := header("RSDT", 0, 1, "KTSRRSDT")
	for _, a := range listed {
		x = le64(x, a)
		r = le32(r, uint32(a))
	}
	xsdtAddr := place(finish(x))
	rsdtAddr := place(finish(r))
	end := base + uint64(len(blob))
	if len(blob) > limit {
		return nil, fmt.Errorf("ACPI tables for %d vCPUs need %d bytes, more than the %d available", len(t.CPUs), len(blob), limit)
	}
	if end > 1<<32 {
		return nil, fmt.Errorf("ACPI tables at %#x..%#x cross 4 GiB", base, end)
	}

	rsdp := make([]byte, 0, 36)
	rsdp = append(rsdp, "RSD PTR "...)
	rsdp = append(rsdp, 0)
	rsdp = append(rsdp, oemID...)
	rsdp = append(rsdp, 2) // revision: ACPI 2.0+
	rsdp = le32(rsdp, uint32(rsdtAddr))
	rsdp = le32(rsdp, 36)
	rsdp = le64(rsdp, xsdtAddr)
	rsdp = append(rsdp, 0, 0, 0, 0)
	rsdp[8] = checksum(rsdp[:20])
	rsdp[32] = checksum(rsdp)
	copy(blob, rsdp)
	return &Tables{Base: base, Blob: blob, RSDP: base}, nil
}
