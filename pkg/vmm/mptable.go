package vmm

import (
	"encoding/binary"
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// MP table (Intel MultiProcessor Specification 1.4): the floating pointer
// in the last KiB of base memory, where Linux's mpparse scans for "_MP_",
// and the config table below it (its 20-byte processor entries outgrow
// that KiB at 49 vCPUs). It tells the guest about its vCPUs (their APIC
// IDs, as the MADT does), the I/O APIC and how ISA interrupts reach it.
// Linux prefers the ACPI MADT (pkg/acpi); the MP table is the fallback for
// acpi=off.
const (
	mpIOAPICVersion = 0x11
	mpLAPICVersion  = 0x14
	mpMaxVCPUs      = 254 // 8-bit APIC ids, one left for the I/O APIC
	mpISAIRQs       = 16
)

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// writeMPTable writes the MP table for vCPUs with the given APIC IDs (the
// first is the bootstrap processor).
func writeMPTable(m *guestmem.Memory, apicIDs []uint32) error {
	vcpus := len(apicIDs)
	if vcpus < 1 || vcpus > mpMaxVCPUs {
		return fmt.Errorf("%d vCPUs: the MP table holds 1 to %d", vcpus, mpMaxVCPUs)
	}
	var maxID uint32
	for _, id := range apicIDs {
		if id > mpMaxVCPUs {
			return fmt.Errorf("APIC ID %d: the MP table holds 8-bit IDs up to %d", id, mpMaxVCPUs)
		}
		maxID = max(maxID, id)
	}
	// The I/O APIC's ID comes after the processors' (one APIC bus).
	ioapicID := byte(min(maxID+1, mpMaxVCPUs))
	var t []byte
	// config table header, filled in below
	t = append(t, make([]byte, 44)...)
	entries := 0
	for i, id := range apicIDs {
		e := make([]byte, 20)
		e[0] = 0 // processor
		e[1] = byte(id)
		e[2] = mpLAPICVersion
		e[3] = 1 // enabled
		if i == 0 {
			e[3] |= 2 // bootstrap processor
		}
		binary.LittleEndian.PutUint32(e[4:], 0x600) // family 6 signature
		binary.LittleEndian.PutUint32(e[8:], 0x201) // FPU, APIC
		t = append(t, e...)
		entries++
	}
	t = append(t, 1, 0, 'I', 'S', 'A', ' ', ' ', ' ') // bus 0: ISA
	entries++
	t = append(t, 2, ioapicID, mpIOAPICVersion, 1, 0, 0, 0, 0) // I/O APIC, enabled
	binary.LittleEndian.PutUint32(t[len(t)-4:], IOAPICAddr)
	entries++
	for irq := 0; irq < mpISAIRQs; irq++ {
		// I/O interrupt: INT, conforming polarity/trigger, ISA irq -> same pin
		t = append(t, 3, 0, 0, 0, 0, byte(irq), ioapicID, byte(irq))
		entries++
	}
	// local interrupts: LINT0 ExtINT, LINT1 NMI, to all local APICs
	t = append(t, 4, 3, 0, 0, 0, 0, 0xFF, 0)
	t = append(t, 4, 1, 0, 0, 0, 0, 0xFF, 1)
	entries += 2

	copy(t[0:], "PCMP")
	binary.LittleEndian.PutUint16(t[4:], uint16(len(t)))
	t[6] = 4 // spec 1.4
	copy(t[8:], "KTSTR   ")
	copy(t[16:], "KTSTR-BOOT  ")
	binary.LittleEndian.PutUint16(t[34:], uint16(entries))
	binary.LittleEndian.PutUint32(t[36:], LAPICAddr)
	t[7] = checksum(t)

	fp := make([]byte, 16)
	copy(fp, "_MP_")
	binary.LittleEndian.PutUint32(fp[4:], mpConfigAddr)
	fp[8] = 1 // length in 16-byte units
	fp[9] = 4
	fp[10] = checksum(fp)
	if len(t) > mptableAddr-mpConfigAddr {
		return fmt.Errorf("MP config table of %d bytes overflows its %d bytes", len(t), mptableAddr-mpConfigAddr)
	}
	if err := m.Write(mptableAddr, fp); err != nil {
		return fmt.Errorf("write MP floating pointer: %w", err)
	}
	if err := m.Write(mpConfigAddr, t); err != nil {
		return fmt.Errorf("write MP config table: %w", err)
	}
	return nil
}
