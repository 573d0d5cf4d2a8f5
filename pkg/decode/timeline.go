package decode

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TimelineOptions control Timeline.
type TimelineOptions struct {
	// Events bounds the events shown around the trigger: the last
	// Events before it and Events/4 after (0: every event).
	Events int
	// Tasks bounds the per-task section: the tasks of the last Tasks
	// events before the trigger (default 40), each with its last 12 events.
	Tasks int
}

// Timeline reads a stream and prints its auto-repro probe events
// (probe_event, probe_meta) as a timeline: what was attached, one line
// per event in time order with times relative to the trigger (the
// scheduler's exit), and then the same events stitched per task. It
// returns an error wrapping ErrNoProbes when the stream has no
// probe_meta frame. Corrupt regions and bad payloads are skipped (a
// timeline is a view; ktstr-decode without --timeline reports them).
func Timeline(in io.Reader, out io.Writer, o TimelineOptions) error {
	var evs []wire.ProbeEvent
	var metas []wire.ProbeMeta
	var exits []wire.SchedExit
	dropped := 0
	d := wire.NewDecoder(in)
	for {
		f, err := d.Next()
		if err == io.EOF {
			break
		}
		var ce *wire.CorruptError
		var te *wire.TruncatedError
		if errors.As(err, &ce) {
			continue
		}
		if errors.As(err, &te) {
			break
		}
		if err != nil {
			return &ReadError{err}
		}
		if f.Flags&wire.FlagHost != 0 {
			continue
		}
		switch f.Type {
		case wire.TypeProbeEvent, wire.TypeProbeMeta, wire.TypeSchedExit:
		default:
			continue
		}
		m, err := wire.Unmarshal(f.Type, f.Payload)
		if err != nil {
			continue
		}
		switch v := m.(type) {
		case wire.ProbeEvent:
			if len(evs) == maxTimelineEvents {
				dropped++
				continue
			}
			evs = append(evs, v)
		case wire.ProbeMeta:
			if len(metas) < 16 {
				metas = append(metas, v)
			}
		case wire.SchedExit:
			if len(exits) < 16 {
				exits = append(exits, v)
			}
		}
	}
	var b []byte
	b = appendTimeline(b, evs, metas, exits, o)
	if dropped > 0 {
		b = fmt.Appendf(b, "(%d probe_event frames past the first %d were not read)\n", dropped, maxTimelineEvents)
	}
	if _, err := out.Write(b); err != nil {
		return &WriteError{err}
	}
	if len(metas) == 0 {
		return ErrNoProbes
	}
	return nil
}

// maxTimelineEvents bounds what Timeline holds: a guest sends at most a
// few thousand; a hostile stream could send millions.
const maxTimelineEvents = 200000

// ErrNoProbes: the stream is of a run without ktstr.probe.
var ErrNoProbes = errors.New("no probe_meta frame: the run had no auto-repro probes (kernel command line ktstr.probe)")

func appendTimeline(b []byte, evs []wire.ProbeEvent, metas []wire.ProbeMeta, exits []wire.SchedExit, o TimelineOptions) []byte {
	if o.Tasks <= 0 {
		o.Tasks = 40
	}
	b = append(b, "auto-repro timeline\n"...)
	var done *wire.ProbeMeta
	for i := range metas {
		m := &metas[i]
		if m.Error != "" {
			b = fmt.Appendf(b, "  probes: %s: %s\n", m.Stage, m.Error)
		}
		if m.Stage == wire.ProbeStageDone {
			done = m
		}
	}
	if len(metas) > 0 {
		// The last says it all: the guest sends probe_meta again after
		// attaching to the scheduler's callbacks, and at the end.
		m := metas[len(metas)-1]
		if done != nil {
			m = *done
		}
		var kp, ops []string
		for _, a := range m.Attached {
			if a.Kind == "fexit" {
				ops = append(ops, a.Func+"(ret)")
			} else if a.Kind == "fentry" {
				ops = append(ops, a.Func)
			} else {
				kp = append(kp, a.Func)
			}
		}
		b = fmt.Appendf(b, "  attached: %d kprobes: %s\n", len(kp), strings.Join(kp, " "))
		if len(ops) > 0 {
			b = fmt.Appendf(b, "  attached: %d probes on the scheduler's callbacks (fentry; NAME(ret): fexit): %s\n", len(ops), strings.Join(ops, " "))
		}
		// Every frame's failures, once each: the first frame's (the
		// kprobes) and the later ones' (the callbacks) differ.
		shown := map[wire.ProbeAttach]bool{}
		var failed []wire.ProbeAttach
		for _, mm := range append(metas, m) {
			for _, f := range mm.Failed {
				if !shown[f] {
					shown[f] = true
					failed = append(failed, f)
				}
			}
		}
		for _, f := range failed {
			b = fmt.Appendf(b, "  not attached: %s: %s\n", f.Func, f.Error)
		}
		if len(m.Programs) > 0 {
			b = fmt.Appendf(b, "  scheduler callbacks (struct_ops programs): %s\n", strings.Join(m.Programs, " "))
		}
		if done != nil {
			b = fmt.Appendf(b, "  events: %d recorded, the last %d kept; trigger fired: %v\n", done.Events, done.Sent, done.Triggered)
		}
	}
	for _, x := range exits {
		b = fmt.Appendf(b, "  scheduler exit: %s (%d) %s %s\n", x.KindName, x.Kind, x.Reason, x.Message)
	}
	if len(evs) == 0 {
		return append(b, "  no events\n"...)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].TimeNS < evs[j].TimeNS })
	trig := -1
	for i := range evs {
		if evs[i].Trigger {
			trig = i
			break
		}
	}
	ref := evs[len(evs)-1].TimeNS
	if trig >= 0 {
		ref = evs[trig].TimeNS
	}
	lo, hi := 0, len(evs)
	if o.Events > 0 {
		at := trig
		if at < 0 {
			at = len(evs) - 1
		}
		lo, hi = max(0, at-o.Events), min(len(evs), at+1+o.Events/4)
	}
	if trig >= 0 {
		b = fmt.Appendf(b, "  trigger: %s at %.6f s guest time; times below are relative to it\n", evs[trig].Func, float64(ref)/1e9)
	} else {
		b = append(b, "  no trigger (the scheduler did not exit while probed); times are relative to the last event\n"...)
	}
	if lo > 0 || hi < len(evs) {
		b = fmt.Appendf(b, "  showing events %d..%d of %d\n", lo+1, hi, len(evs))
	}
	b = append(b, "\n      TIME(ms) CPU TASK                   FUNCTION                  FIELDS\n"...)
	for i := lo; i < hi; i++ {
		b = appendEventLine(b, &evs[i], ref, i == trig)
	}
	// Per task: the tasks that the last events before the trigger touched.
	end := hi
	if trig >= 0 {
		end = trig + 1
	}
	var order []int
	seen := map[int]bool{}
	// First the tasks the scheduler's exit message names ("init[73]
	// failed to run for 5.012s"): a stall's victim.
	named := map[int]bool{}
	for _, x := range exits {
		for _, m := range taskRE.FindAllStringSubmatch(x.Message, 4) {
			if pid, err := strconv.Atoi(m[1]); err == nil && !seen[pid] {
				seen[pid], named[pid] = true, true
				order = append(order, pid)
			}
		}
	}
	for i := end - 1; i >= max(lo, end-o.Tasks); i-- {
		if p := evs[i].TaskPID; p != nil && !seen[*p] {
			seen[*p] = true
			order = append(order, *p)
		}
	}
	if len(order) > 0 {
		b = append(b, "\nper task (most recently touched first; the task's last 12 events up to the trigger)\n"...)
	}
	for _, pid := range order {
		var mine []int
		from := lo
		if named[pid] {
			from = 0 // a stall's victim was last seen long before the window
		}
		for i := from; i < end; i++ {
			if p := evs[i].TaskPID; p != nil && *p == pid {
				mine = append(mine, i)
			}
		}
		if len(mine) > 12 {
			mine = mine[len(mine)-12:]
		}
		if len(mine) == 0 {
			b = fmt.Appendf(b, "  %d (named by the scheduler's exit): no event recorded\n", pid)
			continue
		}
		comm := evs[mine[len(mine)-1]].TaskComm
		if named[pid] {
			comm += " (named by the scheduler's exit)"
		}
		b = fmt.Appendf(b, "  %d/%s:", pid, comm)
		for k, i := range mine {
			if k > 0 {
				b = append(b, " ->"...)
			}
			e := &evs[i]
			b = fmt.Appendf(b, " %s@%s/cpu%d", shortFunc(e.Func), relMS(e.TimeNS, ref), e.CPU)
			if e.LastSeen {
				b = append(b, "(last seen)"...)
			}
			if e.DSQ != nil {
				b = append(b, "["...)
				b = append(b, DSQName(*e.DSQ)...)
				b = append(b, ']')
			}
		}
		b = append(b, '\n')
	}
	return b
}

// taskRE finds "comm[pid]" in a sched_ext exit message.
var taskRE = regexp.MustCompile(`\S+\[(\d{1,9})\]`)

func relMS(t, ref uint64) string {
	return strconv.FormatFloat((float64(t)-float64(ref))/1e6, 'f', 3, 64)
}

func shortFunc(f string) string {
	return strings.TrimSuffix(strings.TrimSuffix(f, "_scx"), "_task")
}

func appendEventLine(b []byte, e *wire.ProbeEvent, ref uint64, trig bool) []byte {
	mark := "  "
	if trig {
		mark = ">>"
	} else if e.LastSeen {
		mark = "ls" // the task's last event, older than the window
	}
	who := fmt.Sprintf("%d/%s", e.PID, e.Comm)
	b = fmt.Appendf(b, "%s%12s %3d %-22s %-25s", mark, relMS(e.TimeNS, ref), e.CPU, clip(who, 22), e.Func)
	if e.ExitKind != nil {
		b = fmt.Appendf(b, " EXIT kind=%s", ExitKindName(*e.ExitKind))
		if e.ExitCode != nil {
			b = fmt.Appendf(b, " code=%d", *e.ExitCode)
		}
	}
	if e.Ret != nil {
		b = fmt.Appendf(b, " ret=%d", *e.Ret)
	}
	if e.TaskPID != nil {
		b = fmt.Appendf(b, " task=%d/%s", *e.TaskPID, e.TaskComm)
	}
	if e.RqCPU != nil {
		b = fmt.Appendf(b, " rq=cpu%d", *e.RqCPU)
		if e.RqNr != nil {
			b = fmt.Appendf(b, " nr_running=%d", *e.RqNr)
		}
		if e.RqScxNr != nil {
			b = fmt.Appendf(b, " scx_nr=%d", *e.RqScxNr)
		}
	}
	if e.DSQ != nil {
		b = fmt.Appendf(b, " dsq=%s", DSQName(*e.DSQ))
		if e.DSQNr != nil {
			b = fmt.Appendf(b, " dsq_nr=%d", *e.DSQNr)
		}
	}
	if e.TaskDSQ != nil {
		b = fmt.Appendf(b, " on=%s", DSQName(*e.TaskDSQ))
	}
	if e.EnqFlags != nil {
		key := "enq_flags"
		if fn := strings.TrimPrefix(e.Func, wire.ProbeOpsPrefix); strings.HasPrefix(fn, "dequeue") || strings.HasSuffix(fn, "_dequeue") {
			key = "deq_flags"
			b = fmt.Appendf(b, " %s=%s", key, DeqFlags(*e.EnqFlags))
		} else {
			b = fmt.Appendf(b, " %s=%s", key, EnqFlags(*e.EnqFlags))
		}
	}
	if e.CPUMask != nil {
		b = fmt.Appendf(b, " cpus=%s", MaskCPUs(*e.CPUMask))
	}
	if e.Slice != nil {
		b = fmt.Appendf(b, " slice=%s", fmtDur(*e.Slice))
	}
	if len(e.Args) > 0 && (e.TaskPID == nil && e.RqCPU == nil || strings.HasPrefix(e.Func, wire.ProbeOpsPrefix)) {
		b = append(b, " args="...)
		for i, a := range e.Args {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, "%#x", a)
		}
	}
	if e.Text != "" {
		b = append(b, " text="...)
		b = strconv.AppendQuote(b, e.Text)
	}
	b = append(b, '\n')
	if len(e.Stack) > 0 {
		b = append(b, "                   stack: "...)
		b = append(b, strings.Join(e.Stack, " <- ")...)
		b = append(b, '\n')
	}
	return b
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// DSQ ids (include/linux/sched/ext.h, enum scx_dsq_id_flags).
const (
	dsqBuiltin  = uint64(1) << 63
	dsqLocalOn  = uint64(1) << 62
	dsqInvalid  = dsqBuiltin
	dsqGlobal   = dsqBuiltin | 1
	dsqLocal    = dsqBuiltin | 2
	dsqLocalCPU = uint64(0xffffffff)
)

// DSQName names a dispatch queue id: SCX_DSQ_GLOBAL, SCX_DSQ_LOCAL,
// SCX_DSQ_LOCAL_ON|N (CPU N's local DSQ), SCX_DSQ_INVALID, a built-in
// one by number, or the scheduler's own DSQ by its number.
func DSQName(id uint64) string {
	switch {
	case id == dsqInvalid:
		return "SCX_DSQ_INVALID"
	case id == dsqGlobal:
		return "SCX_DSQ_GLOBAL"
	case id == dsqLocal:
		return "SCX_DSQ_LOCAL"
	case id&(dsqBuiltin|dsqLocalOn) == dsqBuiltin|dsqLocalOn && id&^(dsqBuiltin|dsqLocalOn|dsqLocalCPU) == 0:
		return "SCX_DSQ_LOCAL_ON|" + strconv.FormatUint(id&dsqLocalCPU, 10)
	case id&dsqBuiltin != 0:
		return fmt.Sprintf("SCX_DSQ_BUILTIN|%#x", id&^dsqBuiltin)
	}
	return strconv.FormatUint(id, 10)
}

type flagName struct {
	bit  uint64
	name string
}

// Enqueue flags: the core's ENQUEUE_* (kernel/sched/sched.h) and
// sched_ext's SCX_ENQ_* (enum scx_enq_flags), Linux 6.12.
var enqNames = []flagName{
	{1 << 0, "WAKEUP"}, {1 << 1, "RESTORE"}, {1 << 2, "MOVE"}, {1 << 3, "NOCLOCK"},
	{1 << 4, "HEAD"}, {1 << 5, "REPLENISH"}, {1 << 6, "MIGRATED"}, {1 << 7, "INITIAL"},
	{1 << 8, "MIGRATING"}, {1 << 9, "DELAYED"}, {1 << 10, "CPU_SELECTED"},
	{1 << 32, "PREEMPT"}, {1 << 40, "REENQ"}, {1 << 41, "LAST"},
	{1 << 56, "CLEAR_OPSS"}, {1 << 57, "DSQ_PRIQ"},
}

// Dequeue flags (DEQUEUE_*).
var deqNames = []flagName{
	{1 << 0, "SLEEP"}, {1 << 1, "SAVE"}, {1 << 2, "MOVE"}, {1 << 3, "NOCLOCK"},
	{1 << 4, "SPECIAL"}, {1 << 8, "MIGRATING"}, {1 << 9, "DELAYED"},
}

func flagsText(v uint64, names []flagName) string {
	if v == 0 {
		return "0"
	}
	var parts []string
	for _, f := range names {
		if v&f.bit != 0 {
			parts = append(parts, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	return strings.Join(parts, "|")
}

// EnqFlags names enqueue flags ("WAKEUP|CPU_SELECTED"); bits without a
// name stay hex.
func EnqFlags(v uint64) string { return flagsText(v, enqNames) }

// DeqFlags names dequeue flags ("SLEEP").
func DeqFlags(v uint64) string { return flagsText(v, deqNames) }

// MaskCPUs is a 64-bit CPU mask as a CPU list ("0-3,8").
func MaskCPUs(m uint64) string {
	var ids []int
	for i := range 64 {
		if m&(1<<i) != 0 {
			ids = append(ids, i)
		}
	}
	if len(ids) == 0 {
		return "none"
	}
	return cpulist.Format(ids)
}

// ExitKindName names an enum scx_exit_kind value ("error_bpf (1025)").
func ExitKindName(k int) string {
	names := map[int]string{0: "none", 1: "done", 64: "unreg", 65: "unreg_bpf", 66: "unreg_kern", 67: "sysrq",
		1024: "error", 1025: "error_bpf", 1026: "error_stall"}
	if n, ok := names[k]; ok {
		return fmt.Sprintf("%s (%d)", n, k)
	}
	return strconv.Itoa(k)
}

// appendProbeEvent is a probe_event frame's one-line summary.
func appendProbeEvent(dst []byte, e *wire.ProbeEvent) []byte {
	line := strings.Fields(strings.ReplaceAll(string(appendEventLine(nil, e, e.TimeNS, false)), "\n", " "))
	// The shared line starts with the relative time (0.000) and the CPU.
	if len(line) >= 2 {
		line = append([]string{"cpu=" + line[1]}, line[2:]...)
	}
	return append(dst, strings.Join(line, " ")...)
}

// appendProbeMeta is a probe_meta frame's one-line summary.
func appendProbeMeta(dst []byte, m *wire.ProbeMeta) []byte {
	dst = appendVal(dst, m.Stage)
	dst = kvInt(dst, "attached", int64(len(m.Attached)))
	dst = kvInt(dst, "failed", int64(len(m.Failed)))
	for _, f := range m.Failed {
		dst = kv(dst, "not_attached", f.Func+": "+f.Error)
	}
	dst = kvOpt(dst, "error", m.Error)
	if m.Stage == wire.ProbeStageDone {
		dst = fmt.Appendf(dst, " events=%d sent=%d triggered=%v", m.Events, m.Sent, m.Triggered)
	}
	if len(m.Programs) > 0 {
		dst = kv(dst, "programs", strings.Join(m.Programs, ","))
	}
	return dst
}
