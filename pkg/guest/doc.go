// Package guest owns what runs inside a ktstr guest as PID 1: mounting the
// pseudo filesystems, finding the "ktstr" virtio port, reading the run
// configuration (runconfig.Path plus kernel command-line overrides),
// starting and watching the sched_ext scheduler (sched_ext sysfs state and
// the kernel's /dev/kmsg disable line), running a scenario's workers in
// cgroups, measuring them, evaluating the checks, streaming everything as
// wire frames, and powering the guest off with a final exit code.
//
// Workers are separate processes: the init re-executes itself with
// WorkerArg as argv[1], places the child directly into its cgroup
// (clone3 CLONE_INTO_CGROUP), and exchanges one JSON line per report over
// pipes. The work loops and their measurement live in pkg/workload; the
// check arithmetic (Evaluate) is a plain function tested on the host.
//
// Scenario operations beyond adding and removing cgroups (cpusets,
// affinity, policies, freezing, nested cgroups, repetition during a step)
// live in ops.go; the scheduler's BPF program statistics (bpf_prog_stats)
// in bpfstats.go.
//
// Imports: the standard library, golang.org/x/sys/unix, pkg/wire,
// pkg/runconfig, pkg/scenario, pkg/cpulist, pkg/workload,
// github.com/cilium/ebpf, pkg/probe (the auto-repro probes, only with
// ktstr.probe).
package guest
