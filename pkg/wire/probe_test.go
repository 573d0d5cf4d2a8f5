package wire

import (
	"errors"
	"testing"
)

func probeEventSample() ProbeEvent {
	pid, cpu, kind := 42, 1, 1025
	mask, dsq, flags := uint64(3), uint64(0x8000000000000002), uint64(1)
	nr := uint32(2)
	code := int64(0)
	return ProbeEvent{TimeNS: 123, CPU: 1, PID: 42, Comm: "worker", Func: "dispatch_enqueue", Trigger: true,
		TaskPID: &pid, TaskComm: "worker", CPUMask: &mask, DSQ: &dsq, DSQNr: &nr, EnqFlags: &flags,
		RqCPU: &cpu, RqNr: &nr, Args: []uint64{1, 2}, ExitKind: &kind, ExitCode: &code, Text: "boom %d",
		Stack: []string{"scx_ops_exit_kind+0x0", "balance_scx+0x20"}}
}

// TestProbePayloads: the probe frames' JSON is checked field by field,
// like every other JSON type; an event from a hostile guest with a field
// of the wrong type or out of range is a *PayloadError, never a panic.
func TestProbePayloads(t *testing.T) {
	for _, c := range []struct {
		typ     Type
		payload string
		ok      bool
	}{
		{TypeProbeEvent, `{"time_ns":1,"cpu":0,"pid":1,"func":"balance_scx"}`, true},
		{TypeProbeEvent, `{"time_ns":1,"cpu":0,"pid":1,"func":"x","dsq":18446744073709551615}`, true},
		{TypeProbeEvent, `{"time_ns":-1,"func":"x"}`, false},
		{TypeProbeEvent, `{"dsq":18446744073709551616}`, false},
		{TypeProbeEvent, `{"dsq_nr":4294967296}`, false},
		{TypeProbeEvent, `{"stack":"not a list"}`, false},
		{TypeProbeEvent, `{"args":[1,-2]}`, false},
		{TypeProbeEvent, `[]`, false},
		{TypeProbeMeta, `{"stage":"attached","attached":[{"func":"a","kind":"kprobe"}]}`, true},
		{TypeProbeMeta, `{"stage":"done","failed":[{"func":1}]}`, false},
		{TypeProbeMeta, `{"events":1.5}`, false},
	} {
		err := CheckPayload(c.typ, []byte(c.payload))
		if (err == nil) != c.ok {
			t.Errorf("%s %s: CheckPayload %v, want ok=%v", c.typ, c.payload, err, c.ok)
		}
		var pe *PayloadError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%s %s: %T, want *PayloadError", c.typ, c.payload, err)
		}
	}
	for _, s := range []string{"probe_event", "probe_meta", "0x000d", "14"} {
		if ty, err := ParseType(s); err != nil || (ty != TypeProbeEvent && ty != TypeProbeMeta) {
			t.Errorf("ParseType(%q) = %v, %v", s, ty, err)
		}
	}
}
