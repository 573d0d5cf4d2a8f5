// Package runwatch makes a guest run's hangs visible while they happen:
// ConsoleTail keeps the last bytes of a guest console (bounded memory) and
// answers "what was the last line" and "what were the last N lines"; Watch
// prints a warning when no frame arrived for a while, naming the last
// console line, and Ended reports a run that ended without a guest_exit
// frame, with the console's tail.
//
// Both VMM paths use it: ktstr-boot's KVM VMM (pkg/vmm) and the QEMU paths
// (internal/lab's reference mode, its product successor). It owns only the
// bookkeeping and the wording; callers own their streams and decide what
// counts as a frame.
//
// Imports: the standard library only.
package runwatch
