// Package probe owns ktstr's auto-repro probes inside the guest: BPF
// kprobes (compiled from bpf/probe.c by bpf2go; the object and its Go
// bindings are committed, so a build needs no clang: generate.sh
// regenerates them) on the sched_ext core's entry points into a BPF
// scheduler's callbacks, on the scheduler's exit path (scx_ops_exit_kind:
// the trigger; Linux 6.12 has no sched_ext_exit tracepoint) and on any
// kernel function a failure's stack trace named. Each hit is written to a
// per-CPU flight recorder in BPF maps (the last events of each CPU, a few
// after the trigger, and each task's last event) that nothing reads while
// the run goes on; Session.Stop reads it, resolves kernel stacks with
// /proc/kallsyms and the BPF programs' JITed addresses, and hands the
// events over as wire.ProbeEvent, with a wire.ProbeMeta that says what was
// attached, what failed to attach and why.
//
// Session.WatchOps also attaches fentry programs (bpf/ops.c; fexit too
// for select_cpu, init_task and init) to the scheduler's struct_ops
// programs, its callbacks, as they are loaded: events named "ops:NAME"
// (wire.ProbeOpsPrefix) in the same flight recorder (bpf/recorder.h).
//
// The kernel structures' fields are read with CO-RE: bpf/ktstr_types.h
// names them, and the loader (github.com/cilium/ebpf) relocates the
// offsets against the running kernel's BTF.
//
// It also owns the ktstr.probe kernel command-line value: FormatList
// (what ktstr-run --auto-repro appends) and ParseList (what the init reads).
//
// Imports: the standard library, github.com/cilium/ebpf and pkg/wire.
package probe
