package acpi

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Parsed is a table set read back from guest memory.
type Parsed struct {
	RSDPRevision uint8
	OEMID        string
	// Tables maps a signature to the table's bytes; DSDT is found
	// through the FADT, the others through the XSDT (or the RSDT when
	// the RSDP has no XSDT).
	Tables map[string][]byte
	// Addr maps a signature to the table's guest-physical address.
	Addr map[string]uint64
}

// Parse reads the tables of a blob placed at base, starting from the RSDP
// at rsdp. Every pointer, length and checksum is checked; nothing is
// trusted. It is meant for tests and tools, so it does not scan memory.
func Parse(blob []byte, base, rsdp uint64) (*Parsed, error) {
	at := func(addr uint64, n uint64) ([]byte, error) {
		if addr < base || addr-base > uint64(len(blob)) || n > uint64(len(blob))-(addr-base) {
			return nil, fmt.Errorf("%d bytes at %#x lie outside the blob %#x+%#x", n, addr, base, len(blob))
		}
		off := addr - base
		return blob[off : off+n], nil
	}
	r, err := at(rsdp, 20)
	if err != nil {
		return nil, fmt.Errorf("RSDP: %w", err)
	}
	if string(r[:8]) != "RSD PTR " {
		return nil, fmt.Errorf("RSDP at %#x: bad signature %q", rsdp, r[:8])
	}
	if checksum(r) != 0 {
		return nil, fmt.Errorf("RSDP at %#x: bad checksum", rsdp)
	}
	p := &Parsed{RSDPRevision: r[15], OEMID: string(r[9:15]), Tables: map[string][]byte{}, Addr: map[string]uint64{}}
	var root []byte
	var ptrSize int
	if p.RSDPRevision >= 2 {
		r, err = at(rsdp, 36)
		if err != nil {
			return nil, fmt.Errorf("RSDP: %w", err)
		}
		if binary.LittleEndian.Uint32(r[20:]) != 36 || checksum(r) != 0 {
			return nil, fmt.Errorf("RSDP at %#x: bad length or extended checksum", rsdp)
		}
		if root, err = table(at, binary.LittleEndian.Uint64(r[24:]), "XSDT"); err != nil {
			return nil, err
		}
		ptrSize = 8
		p.Addr["XSDT"] = binary.LittleEndian.Uint64(r[24:])
	} else {
		if root, err = table(at, uint64(binary.LittleEndian.Uint32(r[16:])), "RSDT"); err != nil {
			return nil, err
		}
		ptrSize = 4
		p.Addr["RSDT"] = uint64(binary.LittleEndian.Uint32(r[16:]))
	}
	p.Tables[string(root[:4])] = root
	if ptrSize == 8 {
		// Also check the RSDT that 32-bit readers use: same tables.
		if ra := uint64(binary.LittleEndian.Uint32(r[16:])); ra != 0 {
			rt, err := table(at, ra, "RSDT")
			if err != nil {
				return nil, err
			}
			if (len(rt)-36)*2 != len(root)-36 {
				return nil, fmt.Errorf("RSDT lists %d tables, XSDT %d", (len(rt)-36)/4, (len(root)-36)/8)
			}
			for i := 0; 36+4*i < len(rt); i++ {
				if uint64(binary.LittleEndian.Uint32(rt[36+4*i:])) != binary.LittleEndian.Uint64(root[36+8*i:]) {
					return nil, fmt.Errorf("RSDT entry %d differs from the XSDT's", i)
				}
			}
			p.Tables["RSDT"], p.Addr["RSDT"] = rt, ra
		}
	}
	if (len(root)-36)%ptrSize != 0 {
		return nil, fmt.Errorf("root table length %d is not a whole number of pointers", len(root))
	}
	for off := 36; off < len(root); off += ptrSize {
		var addr uint64
		if ptrSize == 8 {
			addr = binary.LittleEndian.Uint64(root[off:])
		} else {
			addr = uint64(binary.LittleEndian.Uint32(root[off:]))
		}
		t, err := table(at, addr, "")
		if err != nil {
			return nil, err
		}
		sig := string(t[:4])
		if _, dup := p.Tables[sig]; dup || sig == "DSDT" {
			return nil, fmt.Errorf("table %s listed twice", sig)
		}
		p.Tables[sig], p.Addr[sig] = t, addr
	}
	if f, ok := p.Tables["FACP"]; ok {
		var addr uint64
		if len(f) >= 148 {
			addr = binary.LittleEndian.Uint64(f[140:])
		}
		if addr == 0 && len(f) >= 44 {
			addr = uint64(binary.LittleEndian.Uint32(f[40:]))
		}
		if addr != 0 {
			t, err := table(at, addr, "DSDT")
			if err != nil {
				return nil, err
			}
			p.Tables["DSDT"], p.Addr["DSDT"] = t, addr
		}
		// The FACS has a header of its own: signature and length, no
		// checksum, 64-byte alignment.
		addr = 0
		if len(f) >= 140 {
			addr = binary.LittleEndian.Uint64(f[132:])
		}
		if addr == 0 && len(f) >= 40 {
			addr = uint64(binary.LittleEndian.Uint32(f[36:]))
		}
		if addr != 0 {
			h, err := at(addr, 64)
			if err != nil {
				return nil, fmt.Errorf("FACS: %w", err)
			}
			if string(h[:4]) != "FACS" || binary.LittleEndian.Uint32(h[4:]) < 64 || addr%64 != 0 {
				return nil, fmt.Errorf("FACS at %#x: bad signature, length or alignment", addr)
			}
			p.Tables["FACS"], p.Addr["FACS"] = h, addr
		}
	}
	return p, nil
}

// table returns the checked table at addr; want, if set, is its signature.
func table(at func(addr, n uint64) ([]byte, error), addr uint64, want string) ([]byte, error) {
	h, err := at(addr, 36)
	if err != nil {
		return nil, fmt.Errorf("table header: %w", err)
	}
	sig := string(h[:4])
	if want != "" && sig != want {
		return nil, fmt.Errorf("table at %#x: signature %q, want %q", addr, sig, want)
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if n < 36 {
		return nil, fmt.Errorf("table %q at %#x: length %d is shorter than its header", sig, addr, n)
	}
	t, err := at(addr, uint64(n))
	if err != nil {
		return nil, fmt.Errorf("table %q: %w", sig, err)
	}
	if checksum(t) != 0 {
		return nil, fmt.Errorf("table %q at %#x: bad checksum", sig, addr)
	}
	return t, nil
}

// MADTInfo is what a MADT says about processors and interrupts.
type MADTInfo struct {
	LAPICAddr uint32
	Flags     uint32
	CPUs      []MADTCPU // in table order
	IOAPICs   []MADTIOAPIC
	Overrides []IRQOverride
	NMIs      int // LAPIC and x2APIC NMI entries
}

// MADTCPU is a Local APIC or x2APIC entry.
type MADTCPU struct {
	UID     uint32
	APICID  uint32
	Enabled bool
	X2APIC  bool
}

// MADTIOAPIC is an IOAPIC entry.
type MADTIOAPIC struct {
	ID      uint8
	Addr    uint32
	GSIBase uint32
}

// subtables walks the variable-length entries (type, length, ...) of b.
func subtables(b []byte, fn func(typ uint8, e []byte) error) error {
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return fmt.Errorf("truncated entry at offset %d", off)
		}
		typ, n := b[off], int(b[off+1])
		if n < 2 || n > len(b)-off {
			return fmt.Errorf("entry type %d at offset %d has bad length %d", typ, off, n)
		}
		if err := fn(typ, b[off:off+n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func need(e []byte, n int, what string) error {
	if len(e) < n {
		return fmt.Errorf("%s entry is %d bytes, want %d", what, len(e), n)
	}
	return nil
}

// ParseMADT decodes a MADT.
func ParseMADT(t []byte) (*MADTInfo, error) {
	if len(t) < 44 || string(t[:4]) != "APIC" {
		return nil, fmt.Errorf("not a MADT")
	}
	m := &MADTInfo{LAPICAddr: binary.LittleEndian.Uint32(t[36:]), Flags: binary.LittleEndian.Uint32(t[40:])}
	le := binary.LittleEndian
	err := subtables(t[44:], func(typ uint8, e []byte) error {
		switch typ {
		case madtLAPIC:
			if err := need(e, 8, "Local APIC"); err != nil {
				return err
			}
			m.CPUs = append(m.CPUs, MADTCPU{UID: uint32(e[2]), APICID: uint32(e[3]), Enabled: le.Uint32(e[4:])&1 != 0})
		case madtX2APIC:
			if err := need(e, 16, "x2APIC"); err != nil {
				return err
			}
			m.CPUs = append(m.CPUs, MADTCPU{APICID: le.Uint32(e[4:]), Enabled: le.Uint32(e[8:])&1 != 0, UID: le.Uint32(e[12:]), X2APIC: true})
		case madtIOAPIC:
			if err := need(e, 12, "IOAPIC"); err != nil {
				return err
			}
			m.IOAPICs = append(m.IOAPICs, MADTIOAPIC{ID: e[2], Addr: le.Uint32(e[4:]), GSIBase: le.Uint32(e[8:])})
		case madtOverride:
			if err := need(e, 10, "interrupt source override"); err != nil {
				return err
			}
			m.Overrides = append(m.Overrides, IRQOverride{Source: e[3], GSI: le.Uint32(e[4:]), Flags: le.Uint16(e[8:])})
		case madtLAPICNMI, madtX2APICNMI:
			m.NMIs++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("MADT: %w", err)
	}
	return m, nil
}

// SRATInfo is what a SRAT says about NUMA affinity.
type SRATInfo struct {
	// CPUNode maps an APIC ID to its proximity domain.
	CPUNode map[uint32]uint32
	Memory  []SRATMemory
}

// SRATMemory is an enabled memory affinity entry.
type SRATMemory struct {
	Node       uint32
	Base, Size uint64
}

// ParseSRAT decodes a SRAT; disabled entries are left out.
func ParseSRAT(t []byte) (*SRATInfo, error) {
	if len(t) < 48 || string(t[:4]) != "SRAT" {
		return nil, fmt.Errorf("not a SRAT")
	}
	le := binary.LittleEndian
	s := &SRATInfo{CPUNode: map[uint32]uint32{}}
	err := subtables(t[48:], func(typ uint8, e []byte) error {
		switch typ {
		case sratLAPIC:
			if err := need(e, 16, "processor affinity"); err != nil {
				return err
			}
			if le.Uint32(e[4:])&1 != 0 {
				s.CPUNode[uint32(e[3])] = uint32(e[2]) | uint32(e[9])<<8 | uint32(e[10])<<16 | uint32(e[11])<<24
			}
		case sratX2APIC:
			if err := need(e, 24, "x2APIC affinity"); err != nil {
				return err
			}
			if le.Uint32(e[12:])&1 != 0 {
				s.CPUNode[le.Uint32(e[8:])] = le.Uint32(e[4:])
			}
		case sratMemory:
			if err := need(e, 40, "memory affinity"); err != nil {
				return err
			}
			if le.Uint32(e[28:])&1 != 0 {
				s.Memory = append(s.Memory, SRATMemory{Node: le.Uint32(e[2:]), Base: le.Uint64(e[8:]), Size: le.Uint64(e[16:])})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("SRAT: %w", err)
	}
	return s, nil
}

// ParseSLIT decodes a SLIT into its distance matrix.
func ParseSLIT(t []byte) ([][]uint8, error) {
	if len(t) < 44 || string(t[:4]) != "SLIT" {
		return nil, fmt.Errorf("not a SLIT")
	}
	n := binary.LittleEndian.Uint64(t[36:])
	if n == 0 || n > 0xFFFF || n*n != uint64(len(t)-44) {
		return nil, fmt.Errorf("SLIT: %d localities do not match %d bytes of distances", n, len(t)-44)
	}
	out := make([][]uint8, n)
	for i := range out {
		out[i] = bytes.Clone(t[44+uint64(i)*n : 44+uint64(i+1)*n])
	}
	return out, nil
}

// FADTInfo holds the FADT fields a VMM and its tests care about.
type FADTInfo struct {
	Flags              uint32
	BootArch           uint16
	SCI                uint16
	PM1aEvt, PM1aCnt   uint64 // X_PM1a_EVT_BLK / X_PM1a_CNT_BLK addresses
	PM1aEvt32          uint32 // the legacy 32-bit fields
	PM1aCnt32          uint32
	PM1EvtLen          uint8
	PM1CntLen          uint8
	SMICommand         uint32
	ResetPort          uint64
	ResetValue         uint8
	FACS               uint64
	HardwareReduced    bool
	MajorRev, MinorRev uint8
}

// fadtHWReducedACPI is the FADT flag this package does not set.
const fadtHWReducedACPI = 1 << 20

// ParseFADT decodes the fields of FADTInfo from a revision 5+ FADT.
func ParseFADT(t []byte) (*FADTInfo, error) {
	if len(t) < 268 || string(t[:4]) != "FACP" {
		return nil, fmt.Errorf("not a FADT of revision 5 or later")
	}
	le := binary.LittleEndian
	f := &FADTInfo{
		Flags:      le.Uint32(t[112:]),
		BootArch:   le.Uint16(t[109:]),
		SCI:        le.Uint16(t[46:]),
		SMICommand: le.Uint32(t[48:]),
		PM1aEvt32:  le.Uint32(t[56:]),
		PM1aCnt32:  le.Uint32(t[64:]),
		PM1EvtLen:  t[88],
		PM1CntLen:  t[89],
		ResetPort:  le.Uint64(t[120:]),
		ResetValue: t[128],
		FACS:       le.Uint64(t[132:]),
		PM1aEvt:    le.Uint64(t[152:]),
		PM1aCnt:    le.Uint64(t[176:]),
		MajorRev:   t[8],
		MinorRev:   t[131],
	}
	f.HardwareReduced = f.Flags&fadtHWReducedACPI != 0
	return f, nil
}
