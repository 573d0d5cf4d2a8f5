// Package workload owns what a scenario worker does and how it is
// measured: the work loops of every work type of pkg/scenario (Run), the
// per-worker Recorder (progress marks, gaps, CPUs and migrations, wake
// latencies, schedstat run delay) and the metric arithmetic shared with
// the guest's checks (Percentile, CV, MigrationRatio).
//
// The loops live here rather than in pkg/guest because they are the
// largest single concern of a worker and are tested on the host on their
// own (each type's loop runs in a real process in the tests); pkg/guest
// keeps the worker process's plumbing: the report protocol, the file
// descriptors, cgroups and spawning.
//
// A loop runs on one locked OS thread until the process exits; blocking
// waits are bounded (100 ms) so that report requests are always answered.
//
// Imports: the standard library, golang.org/x/sys/unix, pkg/scenario,
// pkg/cpulist, pkg/wire.
package workload
