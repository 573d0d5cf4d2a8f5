package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// Message is a typed payload. Marshal and Unmarshal convert between a
// Message and its payload bytes.
type Message interface {
	MsgType() Type
}

// GuestReady is sent by the guest init once its stream port is open.
type GuestReady struct {
	Kernel      string `json:"kernel"`       // uname -r
	CPUs        int    `json:"cpus"`         // online CPUs
	MemoryKiB   uint64 `json:"memory_kib"`   // MemTotal
	InitVersion string `json:"init_version"` // ktstr version of the init
	UptimeNS    uint64 `json:"uptime_ns"`    // guest CLOCK_BOOTTIME at send
	Cmdline     string `json:"cmdline,omitempty"`
	// What runs, for the run's verdict line: the scheduler's name and
	// arguments ("" or absent: EEVDF), the scenario's name, and the
	// topology the guest sees ("2cpu/1llc/1node").
	Scheduler string `json:"scheduler,omitempty"`
	Scenario  string `json:"scenario,omitempty"`
	Topology  string `json:"topology,omitempty"`
}

// Phase names. New phases may be added; decoders show unknown ones as text.
const (
	PhaseInitStarted          = "init_started"
	PhaseSchedulerStarting    = "scheduler_starting"
	PhaseSchedulerAttached    = "scheduler_attached"
	PhaseSchedulerDied        = "scheduler_died"
	PhaseSchedulerNotAttached = "scheduler_not_attached"
	PhaseScenarioStart        = "scenario_start"
	PhaseScenarioEnd          = "scenario_end"
)

// Phase marks a lifecycle transition of the guest run.
type Phase struct {
	Phase  string `json:"phase"`
	Detail string `json:"detail,omitempty"`
}

// StimulusOp is one operation applied at a scenario step.
type StimulusOp struct {
	Op     string `json:"op"` // add_cgroup, remove_cgroup, set_cpuset, move_workers, ...
	Cgroup string `json:"cgroup,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Stimulus reports one step of a scenario as it begins.
type Stimulus struct {
	Step      int          `json:"step"` // 0-based
	Name      string       `json:"name,omitempty"`
	ElapsedMS uint64       `json:"elapsed_ms"` // since scenario start
	HoldMS    uint64       `json:"hold_ms"`
	Ops       []StimulusOp `json:"ops,omitempty"`
	Cgroups   int          `json:"cgroups"`
	Workers   int          `json:"workers"`
}

// WorkerMetrics is one worker's record over a step or a whole scenario.
type WorkerMetrics struct {
	Step         int     `json:"step"`
	Cgroup       string  `json:"cgroup"`
	Worker       int     `json:"worker"`
	PID          int     `json:"pid"`
	Work         string  `json:"work"`
	Iterations   uint64  `json:"iterations"`
	CPUTimeNS    uint64  `json:"cpu_time_ns"`
	WallNS       uint64  `json:"wall_ns"`
	MaxGapNS     uint64  `json:"max_gap_ns"`
	MaxGapCPU    int     `json:"max_gap_cpu"`
	CPUs         []int   `json:"cpus"`
	Migrations   uint64  `json:"migrations"`
	WakeLatP50NS uint64  `json:"wake_lat_p50_ns,omitempty"`
	WakeLatP99NS uint64  `json:"wake_lat_p99_ns,omitempty"`
	WakeLatMaxNS uint64  `json:"wake_lat_max_ns,omitempty"`
	WakeSamples  uint64  `json:"wake_samples,omitempty"`
	OffCpuset    []int   `json:"off_cpuset,omitempty"` // CPUs used outside the cgroup's cpuset
	ExitCode     *int    `json:"exit_code,omitempty"`  // payload workers
	CPUShare     float64 `json:"cpu_share,omitempty"`  // cpu_time / wall
	// Workload metrics (man/ktstr-stream.5), omitted when zero.
	Unit           string  `json:"unit,omitempty"`            // what one iteration counts ("round trips", "forks", ...)
	OffCPUNS       uint64  `json:"off_cpu_ns,omitempty"`      // wall - cpu_time
	RunDelayNS     uint64  `json:"run_delay_ns,omitempty"`    // schedstat: runnable but waiting for a CPU
	Timeslices     uint64  `json:"timeslices,omitempty"`      // schedstat: times it was given a CPU
	MigrationRatio float64 `json:"migration_ratio,omitempty"` // migrations / iterations
	RatePerS       float64 `json:"rate_per_s,omitempty"`      // iterations per wall second
	RatePerCPUS    float64 `json:"rate_per_cpu_s,omitempty"`  // iterations per CPU second (throughput)
	WakeLatCV      float64 `json:"wake_lat_cv,omitempty"`     // coefficient of variation of the wake latencies
}

// CgroupMetrics summarises a cgroup's workers over a step.
type CgroupMetrics struct {
	Step         int     `json:"step"`
	Cgroup       string  `json:"cgroup"`
	Workers      int     `json:"workers"`
	Cpuset       []int   `json:"cpuset"`
	Weight       int     `json:"weight"`
	CPUsUsed     int     `json:"cpus_used"`
	Iterations   uint64  `json:"iterations"`
	CPUTimeNS    uint64  `json:"cpu_time_ns"`
	SpreadPct    float64 `json:"spread_pct"` // (max-min)/mean of CPU share (CPU time / wall) of the cgroup's workers of one work type
	MaxGapNS     uint64  `json:"max_gap_ns"`
	Migrations   uint64  `json:"migrations"`
	WakeLatP99NS uint64  `json:"wake_lat_p99_ns,omitempty"`
	// Workload metrics (man/ktstr-stream.5), omitted when zero. Rates and
	// their spread cover the measured workers (not payloads).
	OffCPUNS        uint64  `json:"off_cpu_ns,omitempty"`         // sum of the workers' off_cpu_ns
	OffCPUSpreadPct float64 `json:"off_cpu_spread_pct,omitempty"` // max - min of the workers' off-CPU % (upstream's fairness figure)
	RunDelayNS      uint64  `json:"run_delay_ns,omitempty"`       // sum of the workers' run_delay_ns
	MaxRunDelayPct  float64 `json:"max_run_delay_pct,omitempty"`  // largest worker run_delay / wall, in %
	MigrationRatio  float64 `json:"migration_ratio,omitempty"`    // migrations / iterations
	ThroughputCV    float64 `json:"throughput_cv,omitempty"`      // CV of rate_per_cpu_s over workers of one work type
	MinRatePerCPUS  float64 `json:"min_rate_per_cpu_s,omitempty"` // slowest worker's iterations per CPU second
	MinRatePerS     float64 `json:"min_rate_per_s,omitempty"`     // slowest worker's iterations per wall second
	WakeLatP50NS    uint64  `json:"wake_lat_p50_ns,omitempty"`    // median of the workers' p50
	WakeLatMaxNS    uint64  `json:"wake_lat_max_ns,omitempty"`    // largest wake latency of any worker
	WakeLatCV       float64 `json:"wake_lat_cv,omitempty"`        // largest of the workers' wake_lat_cv
	WakeSamples     uint64  `json:"wake_samples,omitempty"`       // sum of the workers' wake_samples
}

// Output stream identifiers.
const (
	StreamStdout uint8 = 1
	StreamStderr uint8 = 2
)

// Well-known program ids for Output frames. Payload programs of a scenario
// use ProgramPayloadBase + their index.
const (
	ProgramScheduler   uint32 = 0
	ProgramInit        uint32 = 1
	ProgramPayloadBase uint32 = 16
)

// Output is a raw chunk of a guest program's stdout or stderr. Binary
// payload: stream u8, reserved u8, reserved u16 (all written 0), program
// u32 LE, then the bytes.
type Output struct {
	Stream  uint8
	Program uint32
	Data    []byte
}

// SchedExit reports how the sched_ext scheduler ended: the kernel's
// exit kind (enum scx_exit_kind: 0 none, 1 done, 64 unreg, 65 unreg_bpf,
// 66 unreg_kern, 67 sysrq, 1024 error, 1025 error_bpf, 1026 error_stall),
// its reason and message as the kernel logged them.
type SchedExit struct {
	Kind     int    `json:"kind"`
	KindName string `json:"kind_name"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"` // the scheduler process's own status
	Signal   string `json:"signal,omitempty"`
}

// CheckResult is one check evaluated in the guest.
type CheckResult struct {
	Name      string  `json:"name"` // starvation, fairness, isolation, scheduler_died, ...
	Pass      bool    `json:"pass"`
	Threshold float64 `json:"threshold"`
	Observed  float64 `json:"observed"`
	Unit      string  `json:"unit,omitempty"`
	Cgroup    string  `json:"cgroup,omitempty"`
	Step      int     `json:"step"`
	Detail    string  `json:"detail,omitempty"`
}

// GuestExit is the guest's final exit code. Binary payload: int32 LE.
type GuestExit struct{ Code int32 }

// Log is a free-form UTF-8 diagnostic line from the guest init.
type Log struct{ Text string }

// KernelSymbols carries runtime addresses the guest can read cheaply
// (/proc/kallsyms), so host samplers can resolve KASLR without scanning.
type KernelSymbols struct {
	Symbols map[string]uint64 `json:"symbols"`
}

// BPFProg is one BPF program of the scheduler as the kernel's program
// info (BPF_OBJ_GET_INFO_BY_FD) describes it.
type BPFProg struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"` // e.g. StructOps, Syscall, Tracing
	// VerifiedInsns is the number of instructions the verifier processed
	// (bpf_prog_aux.verified_insns; Linux 5.16 and later, else 0).
	VerifiedInsns uint32 `json:"verified_insns"`
	// LoadTimeNS is when the program was loaded, in ns since the guest
	// booted (CLOCK_BOOTTIME); LoadOffsetNS the same relative to the
	// scheduler's start (negative: loaded before it started).
	LoadTimeNS   uint64 `json:"load_time_ns"`
	LoadOffsetNS int64  `json:"load_offset_ns"`
	JitedSize    uint32 `json:"jited_size,omitempty"`
	XlatedSize   uint32 `json:"xlated_size,omitempty"`
	// RunTimeNS and RunCount are zero unless kernel.bpf_stats_enabled is set.
	RunTimeNS uint64   `json:"run_time_ns,omitempty"`
	RunCount  uint64   `json:"run_count,omitempty"`
	MapIDs    []uint32 `json:"map_ids,omitempty"`
}

// BPFProgStats lists the BPF programs of the loaded scheduler, sent once
// after it attached. SelectedBy says how the guest told them from other
// programs: "fd" (programs whose file descriptors the scheduler process
// holds) or "load_time" (programs loaded after the scheduler started, when
// its descriptors could not be read).
type BPFProgStats struct {
	Scheduler  string    `json:"scheduler"`
	SelectedBy string    `json:"selected_by"`
	Programs   []BPFProg `json:"programs"`
}

// MemRegion maps a guest-physical range to an offset in the memory file.
type MemRegion struct {
	GPA    uint64 `json:"gpa"`
	Size   uint64 `json:"size"`
	Offset uint64 `json:"offset"`
}

// VMStart is the first host frame: what runs and where its memory is.
type VMStart struct {
	VMM         string      `json:"vmm"`
	PID         int         `json:"pid"`
	VCPUs       int         `json:"vcpus"`
	Topology    string      `json:"topology,omitempty"`
	MemoryPath  string      `json:"memory_path,omitempty"` // e.g. /proc/PID/fd/N
	MemorySize  uint64      `json:"memory_size"`
	Regions     []MemRegion `json:"regions,omitempty"`
	ControlFIFO string      `json:"control_fifo,omitempty"`
	Kernel      string      `json:"kernel,omitempty"`
	Cmdline     string      `json:"cmdline,omitempty"`
	// SetupNS is the VMM's set-up time: from its process start to the
	// moment its vCPUs are released into their first KVM_RUN (0: not
	// measured). SetupPhases split it into named steps, in order (plus
	// steps that ran concurrently with them).
	SetupNS     uint64       `json:"setup_ns,omitempty"`
	SetupPhases []SetupPhase `json:"setup_phases,omitempty"`
}

// SetupPhase is one named step of VMStart.SetupNS. The phases without
// Concurrent add up to SetupNS; a Concurrent one ran beside them.
type SetupPhase struct {
	Name       string `json:"name"`
	NS         uint64 `json:"ns"`
	Concurrent bool   `json:"concurrent,omitempty"`
}

// CPUSample is one CPU's state in a MonitorSample.
type CPUSample struct {
	CPU       int               `json:"cpu"`
	NrRunning uint32            `json:"nr_running"`
	ClockNS   uint64            `json:"clock_ns"`
	CurrPID   int32             `json:"curr_pid"`
	CurrComm  string            `json:"curr_comm,omitempty"`
	LocalDSQ  uint32            `json:"local_dsq"`
	ScxNrRun  uint32            `json:"scx_nr_running"`
	Events    map[string]uint64 `json:"events,omitempty"`
	// Preempted is set when the host saw this vCPU's thread get less
	// than a few guest ticks of CPU time since the previous sample: the
	// guest could not have advanced its clock, so a stall check exempts it.
	Preempted bool `json:"preempted,omitempty"`
}

// MonitorSample is one read of the guest's scheduler state from host side.
type MonitorSample struct {
	Seq             uint64      `json:"seq"`
	ElapsedNS       uint64      `json:"elapsed_ns"`
	ScxState        string      `json:"scx_state,omitempty"`
	ScxOps          string      `json:"scx_ops,omitempty"`
	WatchdogTimeout uint64      `json:"watchdog_timeout_ns,omitempty"`
	CPUs            []CPUSample `json:"cpus"`
	// ScxExitKind is the sched_ext exit kind (enum scx_exit_kind, as in
	// SchedExit) once the scheduler has left the enabled state; 0 before.
	ScxExitKind int    `json:"scx_exit_kind,omitempty"`
	ScxExit     string `json:"scx_exit,omitempty"` // its name, e.g. "error_stall"
}

// VMExit is the last host frame of a run.
type VMExit struct {
	Reason   string            `json:"reason"` // guest_exit, poweroff, reboot, triple_fault, panic, timeout, signal, error
	ExitCode int               `json:"exit_code"`
	WallNS   uint64            `json:"wall_ns"`
	VCPUs    int               `json:"vcpus"`
	Detail   string            `json:"detail,omitempty"`
	KVMStats map[string]uint64 `json:"kvm_stats,omitempty"`
	// FirstGuestFrameNS is the time from the VMM's start to the first
	// byte of the guest's stream (0: the guest sent nothing).
	FirstGuestFrameNS uint64 `json:"first_guest_frame_ns,omitempty"`
	// EndedBy is how the machine stopped when Reason is guest_exit (the
	// guest reported its code): poweroff, reboot, triple_fault, or
	// guest_exit when it did not shut down within the grace period.
	EndedBy string `json:"ended_by,omitempty"`
	// GuestHostFrames counts frame headers of host types (or with the
	// host flag) the guest wrote; the VMM passed none of them on as a
	// frame (see wire.GuestRelay).
	GuestHostFrames uint64 `json:"guest_host_frames,omitempty"`
}

// Violation is a monitor finding.
type Violation struct {
	Kind      string             `json:"kind"` // cpu_stall, imbalance, dsq_depth, sched_exit, check_failed
	CPU       int                `json:"cpu"`  // -1 when not per-CPU
	ElapsedNS uint64             `json:"elapsed_ns"`
	Values    map[string]float64 `json:"values,omitempty"`
	Message   string             `json:"message"`
}

func (GuestReady) MsgType() Type    { return TypeGuestReady }
func (Phase) MsgType() Type         { return TypePhase }
func (Stimulus) MsgType() Type      { return TypeStimulus }
func (WorkerMetrics) MsgType() Type { return TypeWorkerMetrics }
func (CgroupMetrics) MsgType() Type { return TypeCgroupMetrics }
func (Output) MsgType() Type        { return TypeOutput }
func (SchedExit) MsgType() Type     { return TypeSchedExit }
func (CheckResult) MsgType() Type   { return TypeCheckResult }
func (GuestExit) MsgType() Type     { return TypeGuestExit }
func (Log) MsgType() Type           { return TypeLog }
func (KernelSymbols) MsgType() Type { return TypeKernelSymbols }
func (BPFProgStats) MsgType() Type  { return TypeBPFProgStats }
func (VMStart) MsgType() Type       { return TypeVMStart }
func (MonitorSample) MsgType() Type { return TypeMonitorSample }
func (VMExit) MsgType() Type        { return TypeVMExit }
func (Violation) MsgType() Type     { return TypeViolation }

const outputHeader = 8

// Marshal encodes m's payload.
func Marshal(m Message) ([]byte, error) {
	switch v := m.(type) {
	case Output:
		return appendOutput(nil, &v), nil
	case *Output:
		return appendOutput(nil, v), nil
	case GuestExit:
		return binary.LittleEndian.AppendUint32(nil, uint32(v.Code)), nil
	case *GuestExit:
		return binary.LittleEndian.AppendUint32(nil, uint32(v.Code)), nil
	case Log:
		return []byte(v.Text), nil
	case *Log:
		return []byte(v.Text), nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", m.MsgType(), err)
	}
	return b, nil
}

func appendOutput(dst []byte, o *Output) []byte {
	dst = append(dst, o.Stream, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, o.Program)
	return append(dst, o.Data...)
}

// PayloadError reports a payload that does not match its type's layout.
type PayloadError struct {
	Type   Type
	Reason string
}

func (e *PayloadError) Error() string { return fmt.Sprintf("bad %s payload: %s", e.Type, e.Reason) }

// IsJSON reports whether t is a defined type whose payload is a JSON
// object.
func (t Type) IsJSON() bool {
	switch t {
	case TypeOutput, TypeGuestExit, TypeLog:
		return false
	}
	return t.Known()
}

// CheckPayload reports whether payload matches the layout of type t, the
// one definition of a bad payload that every reader (ktstr-decode,
// ktstr-monitor) shares; see man/ktstr-stream.5. Unknown and user types
// have no layout and always pass. The error is a *PayloadError.
func CheckPayload(t Type, payload []byte) error {
	if !t.Known() {
		return nil
	}
	if sh := jsonShapes[t]; sh != nil {
		if err := checkJSONObject(t, payload); err != nil {
			return err
		}
		if typedOK(sh, payload) {
			return nil
		}
	}
	_, err := Unmarshal(t, payload)
	return err
}

// checkJSONObject checks the syntax of a JSON payload: one RFC 8259 value,
// strings in valid UTF-8, nested at most MaxJSONDepth deep, an object.
func checkJSONObject(t Type, p []byte) error {
	if off, deep := ValidJSON(p); deep {
		return &PayloadError{t, fmt.Sprintf("JSON nested deeper than %d levels at byte %d", MaxJSONDepth, off)}
	} else if off >= 0 {
		return &PayloadError{t, fmt.Sprintf("invalid JSON at byte %d", off)}
	}
	if v := bytes.TrimLeft(p, " \t\r\n"); v[0] != '{' {
		return &PayloadError{t, "JSON value is not an object"}
	}
	return nil
}

// typeError says which field of a JSON payload has the wrong type, in the
// man page's terms.
func typeError(t Type, e *json.UnmarshalTypeError) error {
	want := ""
	switch e.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = fmt.Sprintf("an integer from %d to %d", int64(-1)<<(e.Type.Bits()-1), uint64(1)<<(e.Type.Bits()-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = fmt.Sprintf("an integer from 0 to %d", uint64(1)<<(e.Type.Bits()-1)*2-1)
	case reflect.Float32, reflect.Float64:
		want = "a number within the range of an IEEE 754 double"
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Slice, reflect.Array:
		want = "an array"
	case reflect.Map, reflect.Struct:
		want = "an object"
	default:
		want = e.Type.String()
	}
	field := e.Field
	if field == "" {
		field = "(the payload)"
	}
	return &PayloadError{t, fmt.Sprintf("field %s is a JSON %s, want %s", field, e.Value, want)}
}

// Unmarshal decodes a payload of a known type, after checking it as
// CheckPayload does: a payload that does not match its type's layout,
// including a JSON field of the wrong type, returns a *PayloadError. Byte
// slices in the result (Output.Data) alias payload. Unknown and user types
// return an error wrapping ErrUnknownType.
func Unmarshal(t Type, payload []byte) (Message, error) {
	switch t {
	case TypeOutput:
		if len(payload) < outputHeader {
			return nil, &PayloadError{t, fmt.Sprintf("%d bytes, need at least %d", len(payload), outputHeader)}
		}
		s := payload[0]
		if s != StreamStdout && s != StreamStderr {
			return nil, &PayloadError{t, fmt.Sprintf("stream id %d is neither 1 (stdout) nor 2 (stderr)", s)}
		}
		return Output{Stream: s, Program: binary.LittleEndian.Uint32(payload[4:]), Data: payload[outputHeader:]}, nil
	case TypeGuestExit:
		if len(payload) != 4 {
			return nil, &PayloadError{t, fmt.Sprintf("%d bytes, want 4", len(payload))}
		}
		return GuestExit{Code: int32(binary.LittleEndian.Uint32(payload))}, nil
	case TypeLog:
		if !utf8.Valid(payload) {
			return nil, &PayloadError{t, "not UTF-8"}
		}
		return Log{Text: string(payload)}, nil
	}
	var m Message
	switch t {
	case TypeGuestReady:
		m = &GuestReady{}
	case TypePhase:
		m = &Phase{}
	case TypeStimulus:
		m = &Stimulus{}
	case TypeWorkerMetrics:
		m = &WorkerMetrics{}
	case TypeCgroupMetrics:
		m = &CgroupMetrics{}
	case TypeSchedExit:
		m = &SchedExit{}
	case TypeCheckResult:
		m = &CheckResult{}
	case TypeKernelSymbols:
		m = &KernelSymbols{}
	case TypeBPFProgStats:
		m = &BPFProgStats{}
	case TypeProbeEvent:
		m = &ProbeEvent{}
	case TypeProbeMeta:
		m = &ProbeMeta{}
	case TypeVMStart:
		m = &VMStart{}
	case TypeMonitorSample:
		m = &MonitorSample{}
	case TypeVMExit:
		m = &VMExit{}
	case TypeViolation:
		m = &Violation{}
	default:
		return nil, fmt.Errorf("type %s: %w", t, ErrUnknownType)
	}
	if err := checkJSONObject(t, payload); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(payload, m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, typeError(t, te)
		}
		return nil, &PayloadError{t, err.Error()}
	}
	return deref(m), nil
}

func deref(m Message) Message {
	switch v := m.(type) {
	case *GuestReady:
		return *v
	case *Phase:
		return *v
	case *Stimulus:
		return *v
	case *WorkerMetrics:
		return *v
	case *CgroupMetrics:
		return *v
	case *SchedExit:
		return *v
	case *CheckResult:
		return *v
	case *KernelSymbols:
		return *v
	case *BPFProgStats:
		return *v
	case *ProbeEvent:
		return *v
	case *ProbeMeta:
		return *v
	case *VMStart:
		return *v
	case *MonitorSample:
		return *v
	case *VMExit:
		return *v
	case *Violation:
		return *v
	}
	return m
}
