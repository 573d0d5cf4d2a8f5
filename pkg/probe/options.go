package probe

import "strings"

// TriggerFunc is the function whose hit is the timeline's trigger: every
// way a BPF scheduler is made to exit passes through it in Linux 6.12
// (the sched_ext_exit tracepoint of later kernels does not exist there).
const TriggerFunc = "scx_ops_exit_kind"

func lastLines(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
