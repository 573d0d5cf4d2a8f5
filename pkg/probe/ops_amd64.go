//go:build amd64

package probe

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// opsTask is OPS_TASK in bpf/ops.c: the cookie's bit that says the
// callback's first argument is a task.
const opsTask = 1 << 32

// maxOpsProgs bounds the struct_ops programs probed (sched_ext_ops has 33
// callbacks; more struct_ops programs than this are not one scheduler's:
// a scheduler restarted in a loop).
const maxOpsProgs = 64

// opsPoll is how often WatchOps looks for newly loaded struct_ops
// programs.
const opsPoll = 20 * time.Millisecond

// WatchOps attaches an fentry program (bpf/ops.c) to each struct_ops BPF
// program, and an fexit program to those OpsReturns names, (a sched_ext scheduler's callbacks) as soon as it is loaded,
// until stop is closed, then looks once more and returns the ProbeMeta.
// Run it while the scheduler starts: a scheduler loads its programs
// before it enables itself, and attaching one takes a few hundred
// milliseconds under TCG, so waiting for "enabled" misses the first
// callbacks (scx_qmap -e 100 errors out before). Each program is recorded
// in the ProbeMeta (and in Stop's) as attached (Kind "fentry" or "fexit",
// Func OpsPrefix+name) or failed with the kernel's reason; none is fatal. Stop
// must not run before WatchOps returns.
func (s *Session) WatchOps(stop <-chan struct{}) wire.ProbeMeta {
	fail := func(err error) {
		s.meta.Failed = append(s.meta.Failed, wire.ProbeAttach{Func: OpsPrefix + "*", Kind: "fentry", Error: err.Error()})
	}
	spec, err := loadOps()
	if err != nil {
		fail(fmt.Errorf("load the fentry object: %w", err))
		return s.meta
	}
	spec.Maps["slots"].MaxEntries = s.objs.Slots.MaxEntries()
	repl := map[string]*ebpf.Map{"slots": s.objs.Slots, "heads": s.objs.Heads, "ctl": s.objs.Ctl, "last": s.objs.Last}
	seen := map[ebpf.ProgramID]bool{}
	var listErr string
	pass := func() {
		targets, err := structOpsProgs(seen)
		if err != nil && err.Error() != listErr {
			listErr = err.Error()
			fail(err)
		}
		for _, t := range targets {
			if len(s.opsProgs)+len(s.meta.Failed) >= maxOpsProgs {
				t.prog.Close()
				continue
			}
			fn := OpsPrefix + t.name
			for _, exit := range []bool{false, true} {
				if exit && !OpsReturns(t.name) {
					continue
				}
				kind := map[bool]string{false: "fentry", true: "fexit"}[exit]
				t0 := time.Now()
				err := s.attachOp(spec, repl, t, exit)
				s.opsBusy.Add(int64(time.Since(t0)))
				if err != nil {
					s.meta.Failed = append(s.meta.Failed, wire.ProbeAttach{Func: fn, Kind: kind, Error: err.Error()})
				} else {
					s.meta.Attached = append(s.meta.Attached, wire.ProbeAttach{Func: fn, Kind: kind})
				}
			}
			t.prog.Close() // an attached link holds its target
		}
	}
	tick := time.NewTicker(opsPoll)
	defer tick.Stop()
	for {
		pass()
		select {
		case <-stop:
			pass()
			return s.meta
		case <-tick.C:
		}
	}
}

// attachOp loads the fentry (exit: fexit) program for t and attaches it.
func (s *Session) attachOp(spec *ebpf.CollectionSpec, repl map[string]*ebpf.Map, t opsTarget, exit bool) error {
	name, at, kind := "f_ops", ebpf.AttachTraceFEntry, "fentry"
	if exit {
		name, at, kind = "x_ops", ebpf.AttachTraceFExit, "fexit"
	}
	ps := spec.Programs[name]
	ps.AttachTarget, ps.AttachTo = t.prog, t.name
	// Only the one program: the other needs a target of its own.
	var prog *ebpf.Program
	var err error
	opts := &ebpf.CollectionOptions{MapReplacements: repl}
	if exit {
		var o struct {
			P *ebpf.Program `ebpf:"x_ops"`
		}
		err, prog = spec.LoadAndAssign(&o, opts), o.P
	} else {
		var o struct {
			P *ebpf.Program `ebpf:"f_ops"`
		}
		err, prog = spec.LoadAndAssign(&o, opts), o.P
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			err = fmt.Errorf("%w (verifier: %s)", err, lastLines(ve.Log, 3))
		}
		return fmt.Errorf("load %s: %w", kind, err)
	}
	cookie := uint64(len(s.funcs))
	if OpsTakesTask(t.name) {
		cookie |= opsTask
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: at, Cookie: cookie})
	if err != nil {
		prog.Close()
		return fmt.Errorf("attach %s: %w", kind, err)
	}
	s.links = append(s.links, l)
	s.opsProgs = append(s.opsProgs, prog)
	s.funcs = append(s.funcs, OpsPrefix+t.name)
	return nil
}

// opsTarget is one loaded struct_ops program and its BTF function name
// (the program's name is cut at 15 bytes, the BTF name is not).
type opsTarget struct {
	prog *ebpf.Program
	name string
}

// OpsBusy is the time WatchOps has spent loading and attaching so far
// (safe to call while it runs): CPU the scheduler, starting beside it,
// did not get.
func (s *Session) OpsBusy() time.Duration { return time.Duration(s.opsBusy.Load()) }

// structOpsProgs opens the struct_ops programs loaded now that are not
// in seen, and adds every program it looked at to seen.
func structOpsProgs(seen map[ebpf.ProgramID]bool) ([]opsTarget, error) {
	var out []opsTarget
	var id ebpf.ProgramID
	for n := 0; n < 4096; n++ {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("list BPF programs: %w", err)
		}
		id = next
		if seen[id] {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		seen[id] = true
		if p.Type() != ebpf.StructOps {
			p.Close()
			continue
		}
		name := ""
		if info, err := p.Info(); err == nil {
			name = info.Name
			// The kernel keeps 15 bytes of a name; the BTF has it
			// whole (reading it parses the program's BTF: slow under
			// TCG, so only when the name may be cut).
			if len(name) >= 15 {
				if fi, err := info.FuncInfos(); err == nil {
					for _, f := range fi {
						if f.Offset == 0 && f.Func != nil {
							name = f.Func.Name
						}
					}
				}
			}
		}
		if name == "" {
			p.Close()
			continue
		}
		out = append(out, opsTarget{prog: p, name: name})
	}
	return out, nil
}
