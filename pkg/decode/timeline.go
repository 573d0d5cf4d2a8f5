package decode

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// DefaultTimelineEvents is the window of an auto-repro timeline that
// ktstr-run --auto-repro prints (ktstr-decode --timeline-events 60), that
// ktstr-gauntlet records beside the stream and that ktstr-report shows.
const DefaultTimelineEvents = 60

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
// It is ReadTimeline's view written as text (TimelineView.AppendText).
func Timeline(in io.Reader, out io.Writer, o TimelineOptions) error {
	v, err := ReadTimeline(in, o)
	if v == nil {
		return err
	}
	if _, werr := out.Write(v.AppendText(nil)); werr != nil {
		return &WriteError{werr}
	}
	return err
}

// TimelineView is a stream's auto-repro timeline as data: what Timeline
// prints, stitched and windowed the same way, for callers that render it
// otherwise (ktstr-report's HTML and JSON). Every string in it that came
// from the guest is escaped for one line of text (appendEscaped): no
// control character, no invalid UTF-8.
type TimelineView struct {
	// Probes is false when the stream has no probe_meta frame (the run
	// had no ktstr.probe); the view is then empty but for Summary.
	Probes bool `json:"probes"`
	// Summary is what was attached and what not, the scheduler's
	// callbacks, the recorder's counts, the scheduler's exits, the
	// trigger and the window: one line each, as Timeline prints them
	// (without their indentation).
	Summary []string `json:"summary"`
	// Trigger is the trigger event's function ("" without a trigger);
	// event times are relative to it (else to the last event).
	Trigger string `json:"trigger,omitempty"`
	// Total counts the probe events read; Events are those of the window
	// (TimelineOptions.Events), the first being the First-th (0-based).
	Total  int             `json:"total_events"`
	First  int             `json:"first"`
	Events []TimelineEvent `json:"events"`
	// Tasks stitches the events per task: the tasks the scheduler's exit
	// names, then those the last events before the trigger touched.
	Tasks []TimelineTask `json:"tasks,omitempty"`
	// Dropped counts probe_event frames past the first maxTimelineEvents.
	Dropped int `json:"dropped,omitempty"`
}

// TimelineEvent is one event line of the timeline.
type TimelineEvent struct {
	RelMS    string   `json:"rel_ms"` // time relative to the trigger, ms ("-4.000")
	CPU      int      `json:"cpu"`
	Running  string   `json:"running"` // the running thread: pid/comm
	Func     string   `json:"func"`
	Fields   string   `json:"fields,omitempty"` // the decoded fields: "task=9/w dsq=SCX_DSQ_GLOBAL ..."
	Stack    []string `json:"stack,omitempty"`
	Trigger  bool     `json:"trigger,omitempty"`
	LastSeen bool     `json:"last_seen,omitempty"` // a task's last event, older than the window
}

// TimelineTask is one task's events up to the trigger (its last 12).
type TimelineTask struct {
	PID   int            `json:"pid"`
	Comm  string         `json:"comm,omitempty"`
	Named bool           `json:"named,omitempty"` // named by the scheduler's exit message
	Steps []TimelineStep `json:"steps"`           // empty: named, but no event recorded
}

// TimelineStep is one event of a task's chain.
type TimelineStep struct {
	Func     string `json:"func"` // shortened: enqueue_task_scx -> enqueue
	RelMS    string `json:"rel_ms"`
	CPU      int    `json:"cpu"`
	LastSeen bool   `json:"last_seen,omitempty"`
	DSQ      string `json:"dsq,omitempty"` // the DSQ argument, named (DSQName)
}

// ReadTimeline reads a stream's auto-repro frames and stitches them into
// a TimelineView. Its error wraps ErrNoProbes (with the view) when the
// stream has no probe_meta frame, and is a *ReadError (without a view)
// when the stream cannot be read. Corrupt regions and bad payloads are
// skipped.
func ReadTimeline(in io.Reader, o TimelineOptions) (*TimelineView, error) {
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
			return nil, &ReadError{err}
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
	v := buildTimeline(evs, metas, exits, o)
	v.Dropped = dropped
	if !v.Probes {
		return v, ErrNoProbes
	}
	return v, nil
}

// maxTimelineEvents bounds what Timeline holds: a guest sends at most a
// few thousand; a hostile stream could send millions.
const maxTimelineEvents = 200000

// ErrNoProbes: the stream is of a run without ktstr.probe.
var ErrNoProbes = errors.New("no probe_meta frame: the run had no auto-repro probes (kernel command line ktstr.probe)")

// esc makes guest text safe for one line (appendEscaped).
func esc(s string) string { return string(appendEscaped(nil, []byte(s))) }

func buildTimeline(evs []wire.ProbeEvent, metas []wire.ProbeMeta, exits []wire.SchedExit, o TimelineOptions) *TimelineView {
	if o.Tasks <= 0 {
		o.Tasks = 40
	}
	v := &TimelineView{Probes: len(metas) > 0, Total: len(evs), Events: []TimelineEvent{}}
	var done *wire.ProbeMeta
	for i := range metas {
		m := &metas[i]
		if m.Error != "" {
			v.Summary = append(v.Summary, fmt.Sprintf("probes: %s: %s", esc(m.Stage), esc(m.Error)))
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
			switch a.Kind {
			case "fexit":
				ops = append(ops, esc(a.Func)+"(ret)")
			case "fentry":
				ops = append(ops, esc(a.Func))
			default:
				kp = append(kp, esc(a.Func))
			}
		}
		v.Summary = append(v.Summary, fmt.Sprintf("attached: %d kprobes: %s", len(kp), strings.Join(kp, " ")))
		if len(ops) > 0 {
			v.Summary = append(v.Summary, fmt.Sprintf("attached: %d probes on the scheduler's callbacks (fentry; NAME(ret): fexit): %s", len(ops), strings.Join(ops, " ")))
		}
		// Every frame's failures, once each: the first frame's (the
		// kprobes) and the later ones' (the callbacks) differ.
		shown := map[wire.ProbeAttach]bool{}
		for _, mm := range append(metas, m) {
			for _, f := range mm.Failed {
				if !shown[f] {
					shown[f] = true
					v.Summary = append(v.Summary, fmt.Sprintf("not attached: %s: %s", esc(f.Func), esc(f.Error)))
				}
			}
		}
		if len(m.Programs) > 0 {
			progs := make([]string, len(m.Programs))
			for i, p := range m.Programs {
				progs[i] = esc(p)
			}
			v.Summary = append(v.Summary, "scheduler callbacks (struct_ops programs): "+strings.Join(progs, " "))
		}
		if done != nil {
			v.Summary = append(v.Summary, fmt.Sprintf("events: %d recorded, the last %d kept; trigger fired: %v", done.Events, done.Sent, done.Triggered))
		}
	}
	for _, x := range exits {
		v.Summary = append(v.Summary, fmt.Sprintf("scheduler exit: %s (%d) %s %s", esc(x.KindName), x.Kind, esc(x.Reason), esc(x.Message)))
	}
	if len(evs) == 0 {
		v.Summary = append(v.Summary, "no events")
		return v
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
		v.Trigger = esc(evs[trig].Func)
		v.Summary = append(v.Summary, fmt.Sprintf("trigger: %s at %.6f s guest time; times below are relative to it", v.Trigger, float64(ref)/1e9))
	} else {
		v.Summary = append(v.Summary, "no trigger (the scheduler did not exit while probed); times are relative to the last event")
	}
	if lo > 0 || hi < len(evs) {
		v.Summary = append(v.Summary, fmt.Sprintf("showing events %d..%d of %d", lo+1, hi, len(evs)))
	}
	v.First = lo
	for i := lo; i < hi; i++ {
		v.Events = append(v.Events, eventView(&evs[i], ref, i == trig))
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
		t := TimelineTask{PID: pid, Named: named[pid], Steps: []TimelineStep{}}
		if len(mine) > 0 {
			t.Comm = esc(evs[mine[len(mine)-1]].TaskComm)
		}
		for _, i := range mine {
			e := &evs[i]
			s := TimelineStep{Func: esc(shortFunc(e.Func)), RelMS: relMS(e.TimeNS, ref), CPU: e.CPU, LastSeen: e.LastSeen}
			if e.DSQ != nil {
				s.DSQ = DSQName(*e.DSQ)
			}
			t.Steps = append(t.Steps, s)
		}
		v.Tasks = append(v.Tasks, t)
	}
	return v
}

// AppendText appends the view as Timeline prints it.
func (v *TimelineView) AppendText(b []byte) []byte {
	b = append(b, "auto-repro timeline\n"...)
	for _, l := range v.Summary {
		b = append(b, "  "...)
		b = append(b, l...)
		b = append(b, '\n')
	}
	if v.Total > 0 {
		b = append(b, "\n      TIME(ms) CPU TASK                   FUNCTION                  FIELDS\n"...)
		for i := range v.Events {
			b = v.Events[i].appendText(b)
		}
		if len(v.Tasks) > 0 {
			b = append(b, "\nper task (most recently touched first; the task's last 12 events up to the trigger)\n"...)
		}
		for _, t := range v.Tasks {
			if len(t.Steps) == 0 {
				b = fmt.Appendf(b, "  %d (named by the scheduler's exit): no event recorded\n", t.PID)
				continue
			}
			comm := t.Comm
			if t.Named {
				comm += " (named by the scheduler's exit)"
			}
			b = fmt.Appendf(b, "  %d/%s:", t.PID, comm)
			for k, s := range t.Steps {
				if k > 0 {
					b = append(b, " ->"...)
				}
				b = fmt.Appendf(b, " %s@%s/cpu%d", s.Func, s.RelMS, s.CPU)
				if s.LastSeen {
					b = append(b, "(last seen)"...)
				}
				if s.DSQ != "" {
					b = append(b, "["...)
					b = append(b, s.DSQ...)
					b = append(b, ']')
				}
			}
			b = append(b, '\n')
		}
	}
	if v.Dropped > 0 {
		b = fmt.Appendf(b, "(%d probe_event frames past the first %d were not read)\n", v.Dropped, maxTimelineEvents)
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

// eventView is e as a line of the timeline, its time relative to ref.
func eventView(e *wire.ProbeEvent, ref uint64, trig bool) TimelineEvent {
	ev := TimelineEvent{RelMS: relMS(e.TimeNS, ref), CPU: e.CPU, Running: esc(fmt.Sprintf("%d/%s", e.PID, e.Comm)),
		Func: esc(e.Func), Trigger: trig, LastSeen: e.LastSeen}
	var b []byte
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
		b = fmt.Appendf(b, " task=%d/%s", *e.TaskPID, esc(e.TaskComm))
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
		if fn := strings.TrimPrefix(e.Func, wire.ProbeOpsPrefix); strings.HasPrefix(fn, "dequeue") || strings.HasSuffix(fn, "_dequeue") {
			b = fmt.Appendf(b, " deq_flags=%s", DeqFlags(*e.EnqFlags))
		} else {
			b = fmt.Appendf(b, " enq_flags=%s", EnqFlags(*e.EnqFlags))
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
	if len(b) > 0 {
		ev.Fields = string(b[1:])
	}
	for _, f := range e.Stack {
		ev.Stack = append(ev.Stack, esc(f))
	}
	return ev
}

// appendText appends the event's line (and its stack's).
func (e *TimelineEvent) appendText(b []byte) []byte {
	mark := "  "
	if e.Trigger {
		mark = ">>"
	} else if e.LastSeen {
		mark = "ls" // the task's last event, older than the window
	}
	b = fmt.Appendf(b, "%s%12s %3d %-22s %-25s", mark, e.RelMS, e.CPU, clip(e.Running, 22), e.Func)
	if e.Fields != "" {
		b = append(b, ' ')
		b = append(b, e.Fields...)
	}
	b = append(b, '\n')
	if len(e.Stack) > 0 {
		b = append(b, "                   stack: "...)
		b = append(b, strings.Join(e.Stack, " <- ")...)
		b = append(b, '\n')
	}
	return b
}

func appendEventLine(b []byte, e *wire.ProbeEvent, ref uint64, trig bool) []byte {
	ev := eventView(e, ref, trig)
	return ev.appendText(b)
}

// clip cuts s to at most n bytes, at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
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
