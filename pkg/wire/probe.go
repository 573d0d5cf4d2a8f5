package wire

// Auto-repro probe frames (man/ktstr-stream.5): a guest booted with the
// ktstr.probe kernel command-line key attaches BPF probes along the
// sched_ext scheduling path and reports what it attached (ProbeMeta) and
// what the probes saw (ProbeEvent). A guest without the key sends neither.

// ProbeEvent is one hit of a probe: when, where, in which function, and
// the fields the probe read from the kernel's structures. Optional fields
// are absent when the probed function has no such argument.
type ProbeEvent struct {
	TimeNS uint64 `json:"time_ns"` // guest CLOCK_BOOTTIME (as GuestReady.UptimeNS)
	CPU    int    `json:"cpu"`     // the CPU the probe fired on
	PID    int    `json:"pid"`     // the running thread
	Comm   string `json:"comm,omitempty"`
	// Func is the probed kernel function, or ProbeOpsPrefix and the
	// name of the scheduler's struct_ops program (an fentry probe on one
	// of its callbacks: "ops:qmap_enqueue").
	Func string `json:"func"`
	// Trigger marks the sched_ext exit (scx_ops_exit_kind): the event
	// the rest of the timeline leads to.
	Trigger bool `json:"trigger,omitempty"`
	// LastSeen marks a task's latest event kept from before the flight
	// recorder's window (where a stalled task was last seen).
	LastSeen bool `json:"last_seen,omitempty"`

	TaskPID  *int     `json:"task_pid,omitempty"` // the task argument's pid
	TaskComm string   `json:"task_comm,omitempty"`
	CPUMask  *uint64  `json:"cpumask,omitempty"`  // CPUs 0..63 the task may run on (bit n: CPU n)
	Slice    *uint64  `json:"slice_ns,omitempty"` // the task's remaining slice
	TaskDSQ  *uint64  `json:"task_dsq,omitempty"` // the DSQ the task is on
	DSQ      *uint64  `json:"dsq,omitempty"`      // the DSQ argument's id (SCX_DSQ_* or the scheduler's)
	DSQNr    *uint32  `json:"dsq_nr,omitempty"`   // tasks queued on it
	EnqFlags *uint64  `json:"enq_flags,omitempty"`
	RqCPU    *int     `json:"rq_cpu,omitempty"` // the runqueue argument's CPU
	RqNr     *uint32  `json:"rq_nr_running,omitempty"`
	RqScxNr  *uint32  `json:"rq_scx_nr_running,omitempty"`
	Args     []uint64 `json:"args,omitempty"`      // raw arguments, for functions without curated fields
	ExitKind *int     `json:"exit_kind,omitempty"` // enum scx_exit_kind, on the trigger
	ExitCode *int64   `json:"exit_code,omitempty"`
	Ret      *int64   `json:"ret,omitempty"`   // a callback's return value (an fexit probe on it)
	Text     string   `json:"text,omitempty"`  // a format string the kernel was given (scx_bpf_error, exit)
	Stack    []string `json:"stack,omitempty"` // kernel stack, innermost first, "func+0xoff"
}

// ProbeOpsPrefix starts the Func of an fentry probe on one of the
// scheduler's struct_ops callbacks (a BPF program): "ops:qmap_enqueue".
const ProbeOpsPrefix = "ops:"

// ProbeAttach is one probe the guest tried to attach.
type ProbeAttach struct {
	Func  string `json:"func"`
	Kind  string `json:"kind"`            // kprobe; fentry, fexit (ProbeOpsPrefix)
	Error string `json:"error,omitempty"` // why it did not attach (ProbeMeta.Failed)
}

// ProbeMeta says what the guest's probes are: sent once after attaching
// (Stage "attached") and once after the last ProbeEvent (Stage "done",
// with the counts).
type ProbeMeta struct {
	Stage    string        `json:"stage"` // attached, done
	Attached []ProbeAttach `json:"attached,omitempty"`
	Failed   []ProbeAttach `json:"failed,omitempty"`
	// Error is why no probe could be loaded at all (no BTF, no BPF).
	Error     string `json:"error,omitempty"`
	Triggered bool   `json:"triggered,omitempty"` // the exit trigger fired
	// Events counts the probe hits recorded; the flight recorder keeps
	// the last ones of each CPU, so Sent (the probe_event frames sent)
	// may be fewer.
	Events uint64 `json:"events,omitempty"`
	Sent   uint64 `json:"sent,omitempty"`
	// Programs are the struct_ops BPF programs (the scheduler's
	// callbacks, e.g. qmap_enqueue) seen loaded while the probes ran.
	Programs []string `json:"programs,omitempty"`
}

// Probe-meta stages.
const (
	ProbeStageAttached = "attached"
	ProbeStageDone     = "done"
)

func (ProbeEvent) MsgType() Type { return TypeProbeEvent }
func (ProbeMeta) MsgType() Type  { return TypeProbeMeta }
