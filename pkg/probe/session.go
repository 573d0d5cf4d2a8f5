//go:build amd64

package probe

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

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

// Session is a set of attached probes and the goroutine that reads them.
type Session struct {
	objs  bpfObjects
	links []link.Link
	rd    *ringbuf.Reader
	funcs []string // cookie -> function
	meta  wire.ProbeMeta
	mu    sync.Mutex
	win   *window
	done  chan struct{}
	errs  []string

	// The BPF programs' symbols, taken while the scheduler runs (its
	// programs are gone by Stop): every snapEvery and at the trigger.
	snapMu    sync.Mutex
	known     map[ebpf.ProgramID]bool
	bsyms     []sym
	structOps []string
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
	if err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, err.Error())
		s.mu.Unlock()
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
// probe on each of extra, and starts reading. The ProbeMeta says what is
// attached; with no Session (nil) its Error says why nothing is.
func Start(extra []string, o Options) (*Session, wire.ProbeMeta) {
	o.fill()
	s := &Session{meta: wire.ProbeMeta{Stage: wire.ProbeStageAttached}, win: newWindow(o.Before, o.After), done: make(chan struct{}),
		known: map[ebpf.ProgramID]bool{}, stopSnap: make(chan struct{}), snapDone: make(chan struct{})}
	if err := loadBpfObjects(&s.objs, nil); err != nil {
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
	rd, err := ringbuf.NewReader(s.objs.Events)
	if err != nil {
		s.closeLinks()
		s.objs.Close()
		s.meta.Error = fmt.Sprintf("open the probes' ring buffer: %v", err)
		return nil, s.meta
	}
	s.rd = rd
	go s.read()
	go s.snapLoop()
	return s, s.meta
}

func (s *Session) read() {
	defer close(s.done)
	var rec ringbuf.Record
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, ringbuf.ErrFlushed) {
				return // Stop's flush: everything before it was read
			}
			s.mu.Lock()
			s.errs = append(s.errs, err.Error())
			s.mu.Unlock()
			return
		}
		ev, err := decodeEvent(rec.RawSample)
		if err != nil {
			continue
		}
		trig := ev.Fields&fExit != 0
		s.mu.Lock()
		first := trig && !s.win.triggered
		s.win.push(ev, trig)
		s.mu.Unlock()
		if first {
			s.snapshot() // before the exiting scheduler's programs go
		}
	}
}

func (s *Session) closeLinks() {
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
}

// Stop detaches every probe, reads what is left in the ring buffer and
// returns the kept events, oldest first, with the final ProbeMeta.
// kallsyms ("" for /proc/kallsyms) resolves their stacks.
func (s *Session) Stop(kallsyms string) ([]wire.ProbeEvent, wire.ProbeMeta) {
	close(s.stopSnap)
	<-s.snapDone
	s.closeLinks()
	// Let the reader empty the ring: it returns ErrFlushed once the
	// records written before the flush are read. (SetDeadline would wait
	// for the reader's lock, which a blocked read holds.)
	if err := s.rd.Flush(); err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, "flush: "+err.Error())
		s.mu.Unlock()
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	s.rd.Close()
	<-s.done
	meta := wire.ProbeMeta{Stage: wire.ProbeStageDone, Attached: s.meta.Attached, Failed: s.meta.Failed}
	var k uint32
	var dropped uint64
	if err := s.objs.Counters.Lookup(&k, &dropped); err == nil {
		meta.Dropped = dropped
	}
	s.objs.Close()
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
	s.snapMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		meta.Error = "read the probes' ring buffer: " + s.errs[0]
	}
	raw := s.win.events()
	out := make([]wire.ProbeEvent, len(raw))
	for i := range raw {
		out[i] = toWire(&raw[i], s.funcs, syms)
	}
	meta.Triggered, meta.Events, meta.Sent = s.win.triggered, s.win.seen, uint64(len(out))
	return out, meta
}
