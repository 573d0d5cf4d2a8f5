// Package cpupin owns thread pinning and the CPUs a program run under a
// host reservation may use: FromEnv reads KTSTR_CPUS (set by
// ktstr-hostlock, kernel cpu-list format), For maps vCPU i onto them, and
// Thread pins the calling, locked OS thread (Affinity reads its mask
// back). ktstr-boot's VMM, perf mode, QEMU's start and ktstr-hostlock
// --pin all pin through it; none of them needs pkg/hostlock for that.
//
// Imports: pkg/cpulist, golang.org/x/sys/unix and the standard library.
package cpupin
