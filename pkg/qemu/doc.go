// Package qemu owns running guests under qemu-system-x86_64: finding the
// binary ($KTSTR_QEMU, $PATH), the argument set (microvm, or pc for shapes
// microvm cannot express; -smp/-numa from pkg/topology's shape; guest RAM
// in shared memory-backend-files; the console on the 8250 port; the
// guest's "ktstr" virtio-serial port on a unix socket), one QEMU process
// with a hard deadline in its own process group, the host TSC hint that
// lets a kernel under TCG skip calibration, and the choice between
// ktstr-boot's own VMM and QEMU (Choose, from pkg/kvmprobe's verdict).
//
// ktstr-boot's QEMU path (pkg/qemuvmm) and the test lab (internal/lab's
// reference mode, the nested lab's L1 and L2) both boot through it.
//
// Every run has a hard timeout after which QEMU's process group is
// killed; a timed-out run is reported as such, never as a pass.
//
// Imports: pkg/topology, pkg/kvmprobe, pkg/cpupin (pinning QEMU) and the
// standard library.
package qemu
