// Package streamgen writes deterministic synthetic ktstr streams that look
// like a real run (scheduler and payload output, per-worker and per-cgroup
// metrics, host monitor samples, the odd phase, log and check) for
// benchmarks and tests of stream consumers. It imports pkg/wire and the
// standard library only.
package streamgen
