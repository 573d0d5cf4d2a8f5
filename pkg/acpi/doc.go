// Package acpi owns the ACPI tables ktstr-boot gives a guest: RSDP (v2),
// XSDT and RSDT, a FADT with a FACS, a DSDT that defines only \_S5,
// MADT (every vCPU as a Local APIC or x2APIC entry, the IOAPIC, optional
// interrupt source overrides, LINT1 NMI), SRAT (vCPU and memory affinity
// per NUMA node) and SLIT. Build lays them out as one blob for a
// guest-physical address; Parse reads such a blob back (for tests and
// tools), checking every checksum and bound.
//
// Power contract with the VMM. The FADT is a full (not hardware-reduced)
// one with only the PM1a event and control blocks, so the guest keeps its
// legacy PIC, PIT and ISA interrupts. The VMM emulates these I/O ports:
//
//	PM1aEvtPort..PMPortsEnd (0x600-0x605): reads return 0; a word
//	    written to PM1aCntPort (0x604) with IsPowerOff(value) true means
//	    the guest powered off (Linux: poweroff, reboot(RB_POWER_OFF));
//	    other writes are ignored.
//	ResetPort (0xCF9): ResetValue (0x06) there is a reset (Linux
//	    reboot=acpi; reboot=k keeps using port 0x64).
//
// The SCI (IRQ 9) is declared but never raised.
//
// The region the blob occupies (Base..Base+len) must not be RAM in the
// e820 map. Imports: pkg/topology and the standard library.
package acpi
