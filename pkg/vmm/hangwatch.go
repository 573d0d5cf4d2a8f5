package vmm

import (
	"fmt"
	"io"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runwatch"
)

// Hangs made visible while they happen (pkg/runwatch): the console passes
// through a bounded tail, a watch warns on Config.Log when no guest frame
// arrived for Config.HangWarn, and a run that ended without a guest_exit
// frame is reported on Config.Log with the console's last lines
// (Config.ReportNoExit).

// consoleSink returns the writer the console watch writes to: the
// caller's console plus the machine's tail.
func (m *machine) consoleSink(console io.Writer) io.Writer {
	m.tail = runwatch.NewConsoleTail(0)
	if console == nil {
		return m.tail
	}
	return io.MultiWriter(console, m.tail)
}

// startHangWatch starts the no-frame warning (nil when HangWarn is 0 or
// there is no Log).
func (m *machine) startHangWatch() *runwatch.Watch {
	return runwatch.Start(runwatch.Options{
		Quiet: m.cfg.HangWarn, Log: m.cfg.Log, Prefix: "ktstr-boot", Console: m.tail,
		Frames: func() uint64 { _, f := m.stream.Counts(); return f },
	})
}

// reportNoExit says on Log that the run ended without a guest_exit frame.
func (m *machine) reportNoExit(res Result) {
	if !m.cfg.ReportNoExit || res.GuestCode != nil {
		return
	}
	how := fmt.Sprintf("ended by %s after %v", res.Reason, res.Wall.Round(100*time.Millisecond))
	if res.Detail != "" {
		how += " (" + res.Detail + ")"
	}
	runwatch.Ended(m.cfg.Log, "ktstr-boot", how, res.GuestFrames, m.tail.Bytes())
}
