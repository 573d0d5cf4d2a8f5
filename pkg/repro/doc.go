// Package repro owns the host's half of auto-repro: reading a failed
// run's frame stream (and its console) to decide whether the failure was
// the scheduler's (a sched_ext error exit, a stall, a scheduler death)
// and so worth a second boot with the probes, and to find the kernel
// functions named in the failure's stack traces, which become the
// ktstr.probe value of that boot (pkg/probe.FormatList).
//
// It decides and extracts; pkg/pipeline reruns the tools, and pkg/decode
// renders the second boot's probe_event frames as a timeline.
//
// Imports: pkg/wire, pkg/probe (the command-line key and its limits) and
// the standard library.
package repro
