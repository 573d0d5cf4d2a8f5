package pipeline

import (
	"fmt"
	"strings"
)

// ktstr-run's exit codes (man/ktstr-run.1).
const (
	ExitPass      = 0 // the verdict is PASS and every tool exited 0
	ExitFail      = 1 // the run found a fault (verdict FAIL, a monitor violation, a guest failure, panic, hang)
	ExitUsage     = 2
	ExitNoVerdict = 3 // the stream was empty, truncated or incomplete
	ExitTool      = 4 // a tool failed (could not build, lock, boot, monitor, save or decode)
)

// Status is one tool's exit status in a finished run (-1: killed by a
// signal; it did not run: Ran false).
type Status struct {
	Tool string
	Code int
	Ran  bool
}

// Combine turns the tools' exit statuses into ktstr-run's exit code and a
// line saying why. No tool's failure can read as a pass: PASS needs every
// tool to exit 0. A fault found by any tool wins over a tool failure,
// which wins over "no verdict".
//
// ktstr-hostlock's own errors (1, 3) share numbers with guest exit codes
// passed through from ktstr-boot; they count as the guest's only when the
// decoder read a complete stream (it said PASS or FAIL).
func Combine(st []Status) (int, string) {
	var fail, tool, none []string
	streamDone := false
	for _, s := range st {
		if s.Tool == Decode && s.Ran && (s.Code == 0 || s.Code == 1) {
			streamDone = true
		}
	}
	for _, s := range st {
		switch {
		case !s.Ran:
			tool = append(tool, s.Tool+" did not run")
		case s.Code == 0:
		case s.Code < 0:
			tool = append(tool, s.Tool+" was killed by a signal")
		default:
			kind, what := classify(s.Tool, s.Code)
			if (s.Tool == Hostlock || s.Tool == Boot) && kind == ExitFail && s.Code <= 120 && !streamDone {
				kind, what = ExitTool, fmt.Sprintf("%s (under ktstr-hostlock) exited %d with no complete stream (a lock or VMM error, see its message)", Boot, s.Code)
			}
			switch kind {
			case ExitFail:
				fail = append(fail, what)
			case ExitNoVerdict:
				none = append(none, what)
			default:
				tool = append(tool, what)
			}
		}
	}
	switch {
	case len(fail) > 0:
		return ExitFail, "FAIL: " + strings.Join(append(fail, append(tool, none...)...), "; ")
	case len(tool) > 0:
		return ExitTool, "a tool failed: " + strings.Join(append(tool, none...), "; ")
	case len(none) > 0:
		return ExitNoVerdict, "NO VERDICT: " + strings.Join(none, "; ")
	}
	return ExitPass, "PASS"
}

// classify says what one tool's non-zero exit status means.
func classify(tool string, code int) (int, string) {
	say := func(kind int, what string) (int, string) {
		return kind, fmt.Sprintf("%s exited %d (%s)", tool, code, what)
	}
	switch tool {
	case Decode:
		switch code {
		case 1:
			return say(ExitFail, "verdict FAIL")
		case 3:
			return say(ExitNoVerdict, "no verdict")
		}
		return say(ExitTool, "usage or read error")
	case Monitor:
		switch code {
		case 1:
			return say(ExitFail, "violation")
		case 3:
			return say(ExitNoVerdict, "no verdict")
		}
		return say(ExitTool, "bad arguments or corrupt stream")
	case Hostlock, Boot: // the stage ktstr-hostlock -- ktstr-boot: hostlock passes boot's status through
		switch {
		case code >= 1 && code <= 120 && code != 2:
			return say(ExitFail, "the guest's exit code")
		case code == 121:
			return say(ExitFail, "guest kernel panic")
		case code == 122:
			return say(ExitFail, "guest powered off without reporting its exit")
		case code == 123:
			return say(ExitFail, "guest triple fault")
		case code == 124:
			return say(ExitFail, "timeout: the guest did not finish")
		case code > 128:
			return say(ExitTool, "interrupted by a signal")
		}
		return say(ExitTool, "usage, lock or VMM error")
	}
	return say(ExitTool, "failed")
}
