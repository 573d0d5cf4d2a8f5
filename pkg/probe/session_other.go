//go:build !amd64

package probe

import (
	"runtime"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Session is not available on this architecture: the BPF object is
// built for x86-64 guests only.
type Session struct{}

// Start reports that the probes are not built for this architecture.
func Start(extra []string) (*Session, wire.ProbeMeta) {
	return nil, wire.ProbeMeta{Stage: wire.ProbeStageAttached, Error: "probes are built for amd64 guests only, not " + runtime.GOARCH}
}

// WatchOps is never reached (Start returns no Session).
func (s *Session) WatchOps(stop <-chan struct{}) wire.ProbeMeta {
	return wire.ProbeMeta{Stage: wire.ProbeStageAttached}
}

// Meta is never reached (Start returns no Session).
func (s *Session) Meta() wire.ProbeMeta { return wire.ProbeMeta{} }

// OpsBusy is never reached (Start returns no Session).
func (s *Session) OpsBusy() time.Duration { return 0 }

// Stop is never reached (Start returns no Session).
func (s *Session) Stop(kallsyms string) ([]wire.ProbeEvent, wire.ProbeMeta) {
	return nil, wire.ProbeMeta{Stage: wire.ProbeStageDone}
}
