package guest

import (
	"regexp"
	"strings"
)

// Exit kinds of the kernel's enum scx_exit_kind and the reason strings its
// scx_exit_reason() logs for them.
var exitKinds = []struct {
	kind   int
	name   string
	reason string
}{
	{64, "unreg", "unregistered from user space"},
	{65, "unreg_bpf", "unregistered from BPF"},
	{66, "unreg_kern", "unregistered from the main kernel"},
	{67, "sysrq", "disabled by sysrq-S"},
	{1024, "error", "runtime error"},
	{1025, "error_bpf", "scx_bpf_error"},
	{1026, "error_stall", "runnable task stall"},
}

// ExitKind maps a disable reason to the scx_exit_kind value and name;
// unknown reasons give 0, "unknown".
func ExitKind(reason string) (int, string) {
	for _, k := range exitKinds {
		if k.reason == reason {
			return k.kind, k.name
		}
	}
	return 0, "unknown"
}

// KmsgRecord splits a /dev/kmsg record ("prio,seq,usec,flags;text\n" plus
// continuation lines) into its text; ok is false for malformed records.
func KmsgRecord(rec string) (text string, ok bool) {
	_, rest, ok := strings.Cut(rec, ";")
	if !ok {
		return "", false
	}
	text, _, _ = strings.Cut(rest, "\n")
	return text, true
}

var (
	reDisabled = regexp.MustCompile(`^sched_ext: BPF scheduler "([^"]*)" disabled \((.*)\)$`)
	reEnabled  = regexp.MustCompile(`^sched_ext: BPF scheduler "([^"]*)" enabled`)
)

// SchedEvent is a sched_ext line from the kernel log.
type SchedEvent struct {
	Enabled  bool   // an "enabled" line
	Disabled bool   // a "disabled (reason)" line
	Ops      string // the scheduler's ops name
	Reason   string
	Message  string // the "sched_ext: OPS: message" line that follows an error
}

// KmsgParser turns kernel log lines into sched_ext events. After a
// disable it attaches the next "sched_ext: OPS: ..." line as the message.
type KmsgParser struct {
	lastDisabledOps string
}

// Line parses one kernel log text line; ok says whether it was a
// sched_ext line worth reporting.
func (p *KmsgParser) Line(text string) (SchedEvent, bool) {
	if m := reDisabled.FindStringSubmatch(text); m != nil {
		p.lastDisabledOps = m[1]
		return SchedEvent{Disabled: true, Ops: m[1], Reason: m[2]}, true
	}
	if m := reEnabled.FindStringSubmatch(text); m != nil {
		p.lastDisabledOps = ""
		return SchedEvent{Enabled: true, Ops: m[1]}, true
	}
	if p.lastDisabledOps != "" {
		if msg, ok := strings.CutPrefix(text, "sched_ext: "+p.lastDisabledOps+": "); ok {
			ev := SchedEvent{Ops: p.lastDisabledOps, Message: msg}
			p.lastDisabledOps = ""
			return ev, true
		}
	}
	return SchedEvent{}, false
}

// OpsMatches reports whether the sysfs ops name belongs to the scheduler
// packed under name (scx_simple registers as "simple").
func OpsMatches(ops, name string) bool {
	if ops == "" {
		return false
	}
	return name == "" || ops == name || "scx_"+ops == name || strings.Contains(name, ops)
}
