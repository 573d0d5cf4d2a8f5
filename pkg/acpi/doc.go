// Package acpi owns the ACPI tables ktstr-boot gives a guest: RSDP (v2),
// XSDT and RSDT, a hardware-reduced FADT, a DSDT that defines only \_S5,
// MADT (every vCPU as a Local APIC or x2APIC entry, the IOAPIC, optional
// interrupt source overrides, LINT1 NMI), SRAT (vCPU and memory affinity
// per NUMA node) and SLIT. Build lays them out as one blob for a
// guest-physical address; Parse reads such a blob back (for tests and
// tools), checking every checksum and bound.
//
// Power contract with the VMM. The FADT is hardware-reduced (no PM1 or GPE
// blocks, no SCI, no PIT/PIC legacy timer setup in the guest), so the
// guest powers off by writing SLP_TYP=5 with SLP_EN to the sleep control
// register, an I/O port the VMM must emulate:
//
//	SleepControlPort (0x600): a byte write with IsPowerOff(value) true
//	    means the guest powered off (Linux: poweroff, reboot(RB_POWER_OFF)).
//	SleepStatusPort (0x601): reads may return 0; writes are ignored.
//	ResetPort (0x602): a byte write of ResetValue means the guest asked for
//	    a reset (Linux reboot=acpi; reboot=k keeps using port 0x64).
//
// The region the blob occupies (Base..Base+len) must not be RAM in the
// e820 map. Imports: pkg/topology and the standard library.
package acpi
