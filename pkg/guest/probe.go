package guest

import (
	"time"

	"github.com/ktstr-go/ktstr/pkg/probe"
)

// startProbes attaches the auto-repro probes (ktstr.probe) and sends
// their probe_meta frame. The function it returns detaches them and sends
// the kept events, oldest first, then the final probe_meta: call it when
// the scheduler is gone, before the guest's exit frame.
func startProbes(e *env, extra []string) func() {
	t0 := time.Now()
	s, meta := probe.Start(extra)
	e.send(meta)
	if s == nil {
		e.logf("auto-repro probes: %s", meta.Error)
		return func() {}
	}
	e.logf("auto-repro probes: %d attached, %d failed, in %d ms", len(meta.Attached), len(meta.Failed), time.Since(t0).Milliseconds())
	return func() {
		evs, done := s.Stop("")
		for i := range evs {
			e.send(evs[i])
		}
		e.send(done)
		e.logf("auto-repro probes: %d events recorded, the last %d sent, trigger %v",
			done.Events, done.Sent, done.Triggered)
	}
}
