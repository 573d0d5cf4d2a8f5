// Package perfmode owns what ktstr-boot's --perf-mode asks of the host:
// one dedicated host CPU per vCPU (from KTSTR_CPUS, else the process's
// allowed set), 2 MiB huge pages for guest memory, SCHED_FIFO vCPU
// threads pinned to their CPUs, and the KVM exits (HLT, PAUSE, MWAIT,
// C-states) a latency-minded VMM disables. Plan checks all of it up front
// and refuses with one clear line when the host cannot supply it, rather
// than running a "perf" guest that is not.
//
// It does not issue KVM ioctls: it names the capability and the bits, and
// the VMM enables them. Imports: golang.org/x/sys/unix, pkg/cpulist,
// pkg/cpupin (pinning) and the standard library.
package perfmode
