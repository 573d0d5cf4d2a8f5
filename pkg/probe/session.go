//go:build amd64

package probe

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// slotsPerCPU is SLOTS in bpf/recorder.h: the flight recorder's events per CPU.
const slotsPerCPU = 1024

// builtin are the functions always probed, with the program that reads
// their arguments. The first is the trigger.
func builtin(o *bpfObjects) []struct {
	fn   string
	prog *ebpf.Program
} {
	return []struct {
		fn   string
		prog *ebpf.Program
	}{
		{TriggerFunc, o.K_scxOpsExitKind},
		{"scx_bpf_error_bstr", o.K_scxBpfErrorBstr},
		{"select_task_rq_scx", o.K_selectTaskRqScx}, // ops.select_cpu
		{"enqueue_task_scx", o.K_rqTaskFlags},       // ops.runnable
		{"do_enqueue_task", o.K_doEnqueueTask},      // ops.enqueue
		{"dequeue_task_scx", o.K_rqTaskFlags},       // ops.dequeue, ops.quiescent
		{"scx_bpf_dispatch", o.K_scxBpfDispatch},    // the scheduler's dispatch kfunc
		{"dispatch_enqueue", o.K_dispatchEnqueue},   // a task joins a DSQ
		{"dispatch_to_local_dsq", o.K_dispatchToLocalDsq},
		{"balance_scx", o.K_rqTask},                  // ops.dispatch
		{"consume_dispatch_q", o.K_consumeDispatchQ}, // scx_bpf_consume
		{"set_next_task_scx", o.K_rqTask},            // ops.running
		{"put_prev_task_scx", o.K_rqTask},            // ops.stopping
		{"scx_watchdog_workfn", o.K_generic},         // the stall watchdog
		{"scx_ops_error_irq_workfn", o.K_generic},    // error -> disable
		{"scx_ops_disable_workfn", o.K_generic},      // the disable path
	}
}

// Session is a set of attached probes recording into the flight recorder.
type Session struct {
	objs  bpfObjects
	links []link.Link
	funcs []string // cookie -> function
	// opsProgs are the fentry programs AttachOps loaded, one per
	// struct_ops callback.
	opsProgs []*ebpf.Program
	opsBusy  atomic.Int64 // ns WatchOps spent attaching
	meta     wire.ProbeMeta

	// The BPF programs' symbols, taken while the scheduler runs (its
	// programs are gone by Stop), every snapEvery.
	snapMu    sync.Mutex
	known     map[ebpf.ProgramID]bool
	bsyms     []sym
	structOps []string
	errs      []string
	stopSnap  chan struct{}
	snapDone  chan struct{}
}

const snapEvery = 500 * time.Millisecond

func (s *Session) snapshot() {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	syms, ops, err := bpfProgs(s.known)
	s.bsyms = append(s.bsyms, syms...)
	s.structOps = append(s.structOps, ops...)
	if err != nil && len(s.errs) < 4 {
		s.errs = append(s.errs, err.Error())
	}
}

func (s *Session) snapLoop() {
	defer close(s.snapDone)
	t := time.NewTicker(snapEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopSnap:
			return
		case <-t.C:
			s.snapshot()
		}
	}
}

// Start loads the probes, attaches the built-in ones and one generic
// probe on each of extra. The ProbeMeta says what is attached; with no
// Session (nil) its Error says why nothing is.
func Start(extra []string) (*Session, wire.ProbeMeta) {
	s := &Session{meta: wire.ProbeMeta{Stage: wire.ProbeStageAttached},
		known: map[ebpf.ProgramID]bool{}, stopSnap: make(chan struct{}), snapDone: make(chan struct{})}
	spec, err := loadBpf()
	if err == nil {
		var ncpu int
		ncpu, err = ebpf.PossibleCPU()
		if err == nil {
			spec.Maps["slots"].MaxEntries = uint32(ncpu * slotsPerCPU)
			err = spec.LoadAndAssign(&s.objs, nil)
		}
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			err = fmt.Errorf("%w (verifier: %s)", err, lastLines(ve.Log, 3))
		}
		s.meta.Error = fmt.Sprintf("load probes: %v", err)
		return nil, s.meta
	}
	attach := func(fn string, prog *ebpf.Program) {
		l, err := link.Kprobe(fn, prog, &link.KprobeOptions{Cookie: uint64(len(s.funcs))})
		if err != nil {
			s.meta.Failed = append(s.meta.Failed, wire.ProbeAttach{Func: fn, Kind: "kprobe", Error: err.Error()})
			return
		}
		s.links = append(s.links, l)
		s.funcs = append(s.funcs, fn)
		s.meta.Attached = append(s.meta.Attached, wire.ProbeAttach{Func: fn, Kind: "kprobe"})
	}
	seen := map[string]bool{}
	for _, b := range builtin(&s.objs) {
		seen[b.fn] = true
		attach(b.fn, b.prog)
	}
	for _, fn := range extra {
		if !seen[fn] && ValidFunc(fn) {
			seen[fn] = true
			attach(fn, s.objs.K_generic)
		}
	}
	go s.snapLoop()
	return s, s.meta
}

// Meta is what is attached now.
func (s *Session) Meta() wire.ProbeMeta { return s.meta }

// Stop detaches every probe, reads the flight recorder and returns its
// events, oldest first, with the final ProbeMeta. kallsyms ("" for
// /proc/kallsyms) resolves their stacks.
func (s *Session) Stop(kallsyms string) ([]wire.ProbeEvent, wire.ProbeMeta) {
	close(s.stopSnap)
	<-s.snapDone
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
	for _, p := range s.opsProgs {
		p.Close()
	}
	s.opsProgs = nil
	defer s.objs.Close()
	meta := wire.ProbeMeta{Stage: wire.ProbeStageDone, Attached: s.meta.Attached, Failed: s.meta.Failed}
	var errs []string
	var heads []uint64
	if err := s.objs.Heads.Lookup(uint32(0), &heads); err != nil {
		errs = append(errs, fmt.Sprintf("read the recorder's heads: %v", err))
	}
	for _, h := range heads {
		meta.Events += h
	}
	var fired int64
	if err := s.objs.Ctl.Lookup(uint32(0), &fired); err == nil {
		meta.Triggered = fired != 0
	}
	var raw []rawEvent
	buf := make([]byte, s.objs.Slots.ValueSize())
	for k := uint32(0); k < s.objs.Slots.MaxEntries(); k++ {
		if err := s.objs.Slots.Lookup(k, buf); err != nil {
			errs = append(errs, fmt.Sprintf("read slot %d: %v", k, err))
			break
		}
		ev, err := decodeEvent(buf)
		if err != nil || ev.Ts == 0 {
			continue
		}
		raw = append(raw, ev)
	}
	// Each task's latest event, from before the recorder's window.
	type id struct {
		ts       uint64
		cpu, fun uint32
	}
	have := map[id]bool{}
	for _, ev := range raw {
		have[id{ev.Ts, ev.CPU, ev.Func}] = true
	}
	nwin := len(raw)
	var pid int32
	it := s.objs.Last.Iterate()
	for it.Next(&pid, buf) {
		ev, err := decodeEvent(buf)
		if err != nil || ev.Ts == 0 || have[id{ev.Ts, ev.CPU, ev.Func}] {
			continue
		}
		raw = append(raw, ev)
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Sprintf("read the tasks' last events: %v", err))
	}
	lastSeen := map[id]bool{}
	for _, ev := range raw[nwin:] {
		lastSeen[id{ev.Ts, ev.CPU, ev.Func}] = true
	}
	sort.SliceStable(raw, func(i, j int) bool { return raw[i].Ts < raw[j].Ts })
	if kallsyms == "" {
		kallsyms = "/proc/kallsyms"
	}
	var syms *Symtab
	if f, err := os.Open(kallsyms); err == nil {
		syms, _ = ParseKallsyms(f)
		f.Close()
	}
	s.snapMu.Lock()
	syms = syms.with(s.bsyms)
	meta.Programs = s.structOps
	errs = append(errs, s.errs...)
	s.snapMu.Unlock()
	if len(errs) > 0 {
		meta.Error = errs[0]
	}
	out := make([]wire.ProbeEvent, len(raw))
	for i := range raw {
		out[i] = toWire(&raw[i], s.funcs, syms)
		out[i].LastSeen = lastSeen[id{raw[i].Ts, raw[i].CPU, raw[i].Func}]
	}
	meta.Sent = uint64(len(out))
	return out, meta
}
