// Package lab owns ktstr's test lab: booting real kernels under QEMU so that
// the guest side, the stream tools and (in the nested lab) ktstr-boot are
// tested on the real fixture kernel and real schedulers on any machine.
//
// Two modes:
//
//   - Reference (Reference): boot a kernel and an initramfs under plain QEMU
//     TCG (-M microvm -accel tcg -cpu max), with the serial console captured
//     and the guest's "ktstr" virtio-serial port wired to the host. This is
//     the fast path for everything that does not need KVM. pkg/qemu runs it;
//     users without KVM get the same boot from ktstr-boot --vmm qemu.
//   - Nested (StartNested): boot an L1 Linux under QEMU TCG whose /dev/kvm is
//     real (nested SVM), once per suite, and run commands inside it through a
//     small agent (cmd protocol in protocol.go), with the repository's bin/
//     and test data shared in over virtio-9p.
//
// ProbeKVM decides whether the host's /dev/kvm is hardware KVM (then the
// end-to-end tests run ktstr-boot directly) or a software emulation.
//
// Every QEMU run has a hard timeout after which the process is killed; a
// timed-out run is reported as such, never as a pass.
//
// A run that fails keeps its console, stream and QEMU stderr in a directory
// under EvidenceRoot (evidence.go), and the failure names it.
//
// Imports: pkg/qemu (QEMU runs), pkg/kvmprobe (the probe), pkg/wire (the
// reference path passes the guest's stream through wire.GuestRelay, as
// ktstr-boot does, and finds the guest_exit frame), pkg/runwatch (console
// tail, hang warnings) and the standard library. It is test
// infrastructure: product binaries never import it (the developer CLI
// test/lab/ktstr-lab and the L1 agent test/lab/ktstr-lab-agent do).
package lab
