// Package vmm owns ktstr-boot's virtual machine: the guest-physical layout
// (RAM split around the 32-bit MMIO hole, devices in the hole; the RAM
// itself is a pkg/guestmem memfd), the Linux x86_64 boot protocol (bzImage
// validation, zero page, e820, command line, initramfs, identity page
// tables, GDT, direct 64-bit entry), the MP table for SMP, vCPU set-up and
// run loops, and the device model: devices (the Device interface) on a
// port I/O and an MMIO Bus (bus.go): two 16550 UARTs, a minimal i8042 (its
// reset line ends the run), a CMOS RTC, the reset control port, ACPI PM1
// ports (pm.go), a virtio-mmio console with multiport (port 1 "ktstr"
// carries the frame stream). machine.build makes the machine in named
// steps (openKVM, createVM, mapMemory, loadGuest, buildDevices,
// createVCPUs), each a set-up phase (setup.go). Plus run control (timeout, exit reasons, host frames, a control
// FIFO for SysRq, and the removal of stale ones left by killed runs).
//
// It also owns the checks of what ktstr-boot is given that can be made
// before a VM exists (input.go: regular kernel and initramfs files, sizes
// against guest RAM before reading, the memory minimum, the vCPU and APIC
// ID limits), so that they are the same limits the run enforces.
//
// Run outcomes are shared with ktstr-boot's QEMU path (pkg/qemuvmm):
// Classify (reason and exit code), ConsoleWatch (panic and power-down on
// the console) and Stream (the guest's bytes and host frames on stdout).
//
// Every address, length and index that comes from the guest is checked
// against guest RAM before use; a malicious guest can make the run fail,
// never make the VMM read or write outside guest memory, spin or panic.
//
// Imports: pkg/kvm for the ioctls, pkg/guestmem for guest RAM,
// pkg/cpupin to pin vCPU threads,
// pkg/regfile to open its input files,
// pkg/wire for host frames and for finding frame boundaries and the
// guest-exit frame in the guest stream,
// pkg/runwatch for the console tail and the hang warnings (hangwatch.go),
// pkg/topology, pkg/acpi and pkg/perfmode for the guest's shape, its ACPI
// tables and performance mode (topology.go, perf.go),
// golang.org/x/sys/unix and the standard library.
package vmm
