package guest

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/probe"
)

// probeRun is the auto-repro probes (ktstr.probe) of one run.
type probeRun struct {
	e        *env
	s        *probe.Session
	opsStop  chan struct{}
	opsDone  chan struct{}
	opsOnce  sync.Once
	watching bool
}

// startProbes attaches the auto-repro probes' kprobes and sends their
// probe_meta frame. Call watchOps when the scheduler starts and opsLoaded
// once it is enabled (or failed to), and stop when it is gone, before the
// guest's exit frame.
func startProbes(e *env, extra []string) *probeRun {
	t0 := time.Now()
	s, meta := probe.Start(extra)
	e.send(meta)
	if s == nil {
		e.logf("auto-repro probes: %s", meta.Error)
		return &probeRun{e: e}
	}
	e.logf("auto-repro probes: %d attached, %d failed, in %d ms", len(meta.Attached), len(meta.Failed), time.Since(t0).Milliseconds())
	return &probeRun{e: e, s: s}
}

// watchOps starts attaching fentry probes to the scheduler's struct_ops
// callbacks as it loads them.
func (p *probeRun) watchOps() {
	if p.s == nil || p.watching {
		return
	}
	p.watching = true
	p.opsStop, p.opsDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.opsDone)
		// The loads and attaches take kernel locks (the trampoline's,
		// text_mutex): a thread of the normal policy holding one could
		// be stalled by the scheduler under test (scx_qmap -t). So this
		// thread runs SCHED_FIFO, out of sched_ext's reach, like the
		// rest of the init (taskstall.go). It stays locked: the thread
		// ends with the goroutine.
		runtime.LockOSThread()
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1,
			Flags: unix.SCHED_FLAG_RESET_ON_FORK}, 0); err != nil {
			p.e.logf("auto-repro probes: the attaching thread stays at its policy: %v", err)
		}
		t0 := time.Now()
		n0, f0 := len(p.s.Meta().Attached), len(p.s.Meta().Failed)
		m := p.s.WatchOps(p.opsStop)
		p.e.send(m)
		p.e.logf("auto-repro probes on the scheduler's callbacks: %d attached, %d failed, over %d ms",
			len(m.Attached)-n0, len(m.Failed)-f0, time.Since(t0).Milliseconds())
		for _, f := range m.Failed[f0:] {
			p.e.logf("auto-repro probe %s: %s", f.Func, f.Error)
		}
	}()
}

// opsLoaded ends watchOps (after one more look) and waits for it: the
// scheduler is enabled, so its callbacks are all loaded.
func (p *probeRun) opsLoaded() {
	if !p.watching {
		return
	}
	p.opsOnce.Do(func() { close(p.opsStop) })
	<-p.opsDone
}

// busy is the time spent attaching to the scheduler's callbacks so far:
// the scheduler, starting beside it, waits for CPU that long (seconds
// under TCG), so its attach timeout is lengthened by as much.
func (p *probeRun) busy() time.Duration {
	if p.s == nil {
		return 0
	}
	return p.s.OpsBusy()
}

// stop detaches the probes and sends the kept events, oldest first, then
// the final probe_meta.
func (p *probeRun) stop() {
	if p.s == nil {
		return
	}
	p.opsLoaded()
	evs, done := p.s.Stop("")
	for i := range evs {
		p.e.send(evs[i])
	}
	p.e.send(done)
	p.e.logf("auto-repro probes: %d events recorded, the last %d sent, trigger %v",
		done.Events, done.Sent, done.Triggered)
}
