// Package qemuvmm is ktstr-boot's QEMU path (--vmm qemu, or auto without
// hardware KVM): it boots the same kernel and initramfs under QEMU
// (pkg/qemu) with ktstr-boot's contract: on stdout a host vm_start frame
// (vmm "qemu", guest RAM's shared file as memory_path so ktstr-monitor
// can sample it), the guest's "ktstr" port bytes through vmm.Stream (the
// VMM's own frame tracking and rules for guest frames), then a host
// vm_exit frame; the console through vmm.ConsoleWatch; exit codes from
// vmm.Classify, so both VMMs end a run the same way.
//
// Imports: pkg/qemu, pkg/vmm (Stream, ConsoleWatch, Classify and the exit
// reasons and codes), pkg/runwatch (hang warnings, the console tail),
// pkg/wire, pkg/guestmem, pkg/topology and the
// standard library. It is a separate package because pkg/vmm's tests use
// the lab, which uses pkg/qemu.
package qemuvmm
