package guest_test

import (
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/guest"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestE2EDyingInit crashes ktstr-init on purpose in a real guest
// (guest.TestCrashKey) and checks that every way PID 1 can die still ends the
// stream with a reason and guest_exit ExitInitCrashed (issue 20): a
// recovered panic in the main goroutine, and two crashes the Go runtime
// cannot survive (a panic in another goroutine, a stack overflow), which
// the last-gasp watcher reports while the kernel is about to panic.
func TestE2EDyingInit(t *testing.T) {
	e := needE2E(t)
	blob := e.initramfs(t)
	for _, tc := range []struct{ mode, log, console string }{
		{"main", "FATAL: PID 1 panicked: test crash in the main goroutine", "ktstr-init: FATAL: PID 1 panicked"},
		{"goroutine", "Go runtime: panic: test crash in a goroutine", "ktstr-init: FATAL: PID 1 is dying (Go runtime: panic: test crash in a goroutine"},
		{"fatal", "Go runtime: runtime stack:", "fatal error: stack overflow"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := boot(t, e, blob, guest.TestCrashKey+"="+tc.mode)
			wantExit(t, r, guest.ExitInitCrashed)
			found := false
			for _, m := range r.frames {
				if l, ok := m.(wire.Log); ok && strings.Contains(l.Text, tc.log) {
					found = true
				}
			}
			if !found {
				t.Errorf("no log frame with %q\n%s", tc.log, r)
			}
			if !strings.Contains(string(r.console), tc.console) {
				t.Errorf("console lacks %q\n%s", tc.console, r)
			}
		})
	}
}
