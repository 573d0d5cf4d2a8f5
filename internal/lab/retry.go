package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// LabAttempts is the nested lab's retry policy for failures of the lab
// itself (docs/nested-lab.md): an L1 that does not boot, or that stops
// answering (ErrAgentLost, the QEMU TCG nested-SVM hang: 2 in 37 series
// boots when measured, but 1 in 2 L1 sessions in some CI-style runs), is
// replaced by a fresh L1 and the command rerun, up to two times. The
// event is always printed. A command's own result (its exit status, its
// output, a timeout inside it) is never retried.
const LabAttempts = 3

// RunRetrying boots an L1 with start and runs cmd in it under the
// LabAttempts policy, reporting each lab failure on log. It returns the
// command's result and the L1 it ran in, which the caller closes; on error
// every L1 it started is closed.
func RunRetrying(ctx context.Context, start func(context.Context) (*Nested, error), cmd string, timeout time.Duration, live, log io.Writer) (*RunResult, *Nested, error) {
	var last error
	for attempt := 1; attempt <= LabAttempts; attempt++ {
		n, err := start(ctx)
		if err != nil {
			last = err
			fmt.Fprintf(log, "nested lab: L1 boot attempt %d of %d FAILED (retry policy: fresh L1): %v\n", attempt, LabAttempts, err)
			continue
		}
		r, err := n.RunLive(ctx, cmd, timeout, live)
		if err == nil {
			return r, n, nil
		}
		last = err
		if !errors.Is(err, ErrAgentLost) || ctx.Err() != nil {
			n.Close()
			return nil, nil, err
		}
		regs, _ := n.Monitor("info registers")
		fmt.Fprintf(log, "nested lab: L1 STOPPED ANSWERING on attempt %d of %d (retry policy: fresh L1): %v\nL1 registers:\n%s\n",
			attempt, LabAttempts, err, firstLinesOf(regs, 8))
		n.Close()
	}
	return nil, nil, fmt.Errorf("nested lab failed %d times in a row: %w", LabAttempts, last)
}

func firstLinesOf(s string, n int) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if n--; n == 0 {
				return s[:i]
			}
		}
	}
	return s
}
