// Package monitor owns ktstr-monitor's work: finding a running kernel in
// guest RAM without help from the guest (KASLR included), sampling its
// per-CPU runqueue and sched_ext state into wire.MonitorSample values,
// evaluating thresholds over samples and guest frames into wire.Violation
// values, asking the VMM for a kernel dump through its control FIFO, and
// the stream loop that tees a framed stream while doing all of that.
//
// Imports: pkg/wire, pkg/guestmem, pkg/kernelsym, the standard library and
// golang.org/x/sys/unix. cmd/ktstr-monitor is its only user.
package monitor
