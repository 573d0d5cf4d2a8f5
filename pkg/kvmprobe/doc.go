// Package kvmprobe owns one question: does /dev/kvm run guest code at
// hardware-assisted speed (bare-metal KVM, or KVM inside a VM with nested
// virtualization), or is it a software emulation on which Linux cannot
// boot?
//
// It answers by a ratio measured in one run, never by an absolute speed:
// the same two-instruction loop (dec ecx; jnz) runs as a tiny real-mode
// guest through KVM_RUN and natively on the host CPU, alternating several
// times; the ratio of the median rates (guest / host) is compared with
// Threshold. Host load slows both sides alike, so it cannot flip the
// answer; a host that is itself emulated (the nested lab's L1 under QEMU
// TCG) slows both sides alike too.
//
// ktstr-boot --probe prints the verdict and its evidence; ktstr-boot
// --vmm auto, ktstr-run and the test lab (internal/lab) decide with it.
//
// Imports: pkg/kvm for the ioctls and the standard library.
package kvmprobe
