package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// Type is a frame's message type.
type Type uint16

// Guest-originated message types (1..0x00FF).
const (
	TypeGuestReady    Type = 0x0001 // JSON GuestReady
	TypePhase         Type = 0x0002 // JSON Phase
	TypeStimulus      Type = 0x0003 // JSON Stimulus
	TypeWorkerMetrics Type = 0x0004 // JSON WorkerMetrics
	TypeCgroupMetrics Type = 0x0005 // JSON CgroupMetrics
	TypeOutput        Type = 0x0006 // binary Output
	TypeSchedExit     Type = 0x0007 // JSON SchedExit
	TypeCheckResult   Type = 0x0008 // JSON CheckResult
	TypeGuestExit     Type = 0x0009 // binary GuestExit (int32 LE)
	TypeLog           Type = 0x000A // UTF-8 text Log
	TypeKernelSymbols Type = 0x000B // JSON KernelSymbols
	TypeBPFProgStats  Type = 0x000C // JSON BPFProgStats
	TypeProbeEvent    Type = 0x000D // JSON ProbeEvent (auto-repro)
	TypeProbeMeta     Type = 0x000E // JSON ProbeMeta (auto-repro)
)

// Host-originated message types (0x0100..0x01FF); frames of these types
// carry FlagHost.
const (
	TypeVMStart       Type = 0x0100 // JSON VMStart
	TypeMonitorSample Type = 0x0101 // JSON MonitorSample
	TypeVMExit        Type = 0x0102 // JSON VMExit
	TypeViolation     Type = 0x0103 // JSON Violation
)

// User-defined types occupy 0x8000..0xFFFF. ktstr never assigns a meaning
// to them; decoders show their payload as opaque bytes.
const (
	TypeUserMin Type = 0x8000
	TypeUserMax Type = 0xFFFF
)

var typeNames = map[Type]string{
	TypeGuestReady:    "guest_ready",
	TypePhase:         "phase",
	TypeStimulus:      "stimulus",
	TypeWorkerMetrics: "worker_metrics",
	TypeCgroupMetrics: "cgroup_metrics",
	TypeOutput:        "output",
	TypeSchedExit:     "sched_exit",
	TypeCheckResult:   "check_result",
	TypeGuestExit:     "guest_exit",
	TypeLog:           "log",
	TypeKernelSymbols: "kernel_symbols",
	TypeBPFProgStats:  "bpf_prog_stats",
	TypeProbeEvent:    "probe_event",
	TypeProbeMeta:     "probe_meta",
	TypeVMStart:       "vm_start",
	TypeMonitorSample: "monitor_sample",
	TypeVMExit:        "vm_exit",
	TypeViolation:     "violation",
}

// String returns the type's stable name ("phase", "vm_exit", ...), "user"
// followed by the number for user-defined types, and "0x...." otherwise.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	if t >= TypeUserMin {
		return fmt.Sprintf("user_0x%04x", uint16(t))
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}

// Known reports whether t is a type this version of the format defines.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// IsHost reports whether t is in the host-originated range.
func (t Type) IsHost() bool { return t >= 0x0100 && t <= 0x01FF }

// IsUser reports whether t is in the user-defined range.
func (t Type) IsUser() bool { return t >= TypeUserMin }

// ParseType accepts what String returns (a type's name, "user_0x8001",
// "0x0050") or a number (decimal or 0x hex). It rejects anything else,
// including trailing characters and numbers above 0xFFFF.
func ParseType(s string) (Type, error) {
	for t, n := range typeNames {
		if n == s {
			return t, nil
		}
	}
	num, user := strings.CutPrefix(s, "user_")
	v, err := strconv.ParseUint(num, 0, 16)
	if err != nil || (user && Type(v) < TypeUserMin) {
		return 0, fmt.Errorf("unknown message type %q", s)
	}
	return Type(v), nil
}

// Types lists every defined type in numeric order.
func Types() []Type {
	return []Type{TypeGuestReady, TypePhase, TypeStimulus, TypeWorkerMetrics,
		TypeCgroupMetrics, TypeOutput, TypeSchedExit, TypeCheckResult,
		TypeGuestExit, TypeLog, TypeKernelSymbols, TypeBPFProgStats, TypeProbeEvent, TypeProbeMeta,
		TypeVMStart, TypeMonitorSample, TypeVMExit, TypeViolation}
}
