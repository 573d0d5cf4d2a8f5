package kernelsym

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// Field is a struct member's byte offset and size. A zero Size means the
// member does not exist in this kernel.
type Field struct {
	Off  uint32
	Size uint32
}

// OK reports whether the kernel has the field.
func (f Field) OK() bool { return f.Size > 0 }

// Layout holds the offsets the sampler reads, all from BTF.
type Layout struct {
	RqSize      uint32
	RqNrRunning Field // rq.nr_running
	RqClock     Field // rq.clock
	RqCurr      Field // rq.curr (pointer)

	// sched_ext per-CPU state (zero when the kernel has no sched_ext)
	RqScxNrRunning Field // rq.scx.nr_running
	RqScxFlags     Field // rq.scx.flags
	RqScxLocalNr   Field // rq.scx.local_dsq.nr

	TaskPID  Field // task_struct.pid
	TaskComm Field // task_struct.comm

	OpsName      Field // sched_ext_ops.name
	ExitInfoKind Field // scx_exit_info.kind

	// Enum values by number.
	EnableStates map[int64]string // enum scx_ops_enable_state (6.12) or scx_enable_state
	ExitKinds    map[int64]string // enum scx_exit_kind

	// HasEventStats reports whether the kernel has struct scx_event_stats
	// (6.15 and later); this version of the sampler does not read them.
	HasEventStats bool
}

// resolve finds the member at path (dot-separated names) in struct or
// union typ, descending into anonymous members, and returns its offset
// and size.
func resolve(spec *btf.Spec, typ string, path ...string) (Field, error) {
	var t btf.Type
	var st *btf.Struct
	if err := spec.TypeByName(typ, &st); err == nil {
		t = st
	} else {
		var un *btf.Union
		if err2 := spec.TypeByName(typ, &un); err2 != nil {
			return Field{}, fmt.Errorf("BTF has no type %q: %w", typ, err)
		}
		t = un
	}
	var off uint32
	for _, name := range path {
		m, moff, ok := findMember(t, name)
		if !ok {
			return Field{}, fmt.Errorf("BTF type %s has no member %q", typ, name)
		}
		off += moff
		t = m
	}
	sz, err := btf.Sizeof(t)
	if err != nil {
		return Field{}, fmt.Errorf("size of %s.%v: %w", typ, path, err)
	}
	return Field{Off: off, Size: uint32(sz)}, nil
}

func members(t btf.Type) []btf.Member {
	switch v := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		return v.Members
	case *btf.Union:
		return v.Members
	}
	return nil
}

func findMember(t btf.Type, name string) (btf.Type, uint32, bool) {
	ms := members(t)
	for _, m := range ms {
		if m.Name == name {
			return m.Type, m.Offset.Bytes(), true
		}
	}
	for _, m := range ms {
		if m.Name == "" {
			if mt, off, ok := findMember(m.Type, name); ok {
				return mt, m.Offset.Bytes() + off, true
			}
		}
	}
	return nil, 0, false
}

func enumValues(spec *btf.Spec, names ...string) map[int64]string {
	for _, n := range names {
		var e *btf.Enum
		if spec.TypeByName(n, &e) != nil {
			continue
		}
		vals := map[int64]string{}
		for _, v := range e.Values {
			vals[int64(v.Value)] = v.Name
		}
		return vals
	}
	return nil
}

// LoadLayout resolves the Layout from a BTF spec.
func LoadLayout(spec *btf.Spec) (*Layout, error) {
	l := &Layout{}
	var errs []error
	must := func(dst *Field, typ string, path ...string) {
		f, err := resolve(spec, typ, path...)
		if err != nil {
			errs = append(errs, err)
		}
		*dst = f
	}
	opt := func(dst *Field, typ string, path ...string) {
		f, _ := resolve(spec, typ, path...)
		*dst = f
	}
	var rq *btf.Struct
	if err := spec.TypeByName("rq", &rq); err != nil {
		return nil, fmt.Errorf("BTF has no struct rq: %w", err)
	}
	l.RqSize = rq.Size
	must(&l.RqNrRunning, "rq", "nr_running")
	must(&l.RqClock, "rq", "clock")
	must(&l.RqCurr, "rq", "curr")
	must(&l.TaskPID, "task_struct", "pid")
	must(&l.TaskComm, "task_struct", "comm")
	opt(&l.RqScxNrRunning, "rq", "scx", "nr_running")
	opt(&l.RqScxFlags, "rq", "scx", "flags")
	opt(&l.RqScxLocalNr, "rq", "scx", "local_dsq", "nr")
	opt(&l.OpsName, "sched_ext_ops", "name")
	opt(&l.ExitInfoKind, "scx_exit_info", "kind")
	l.EnableStates = enumValues(spec, "scx_ops_enable_state", "scx_enable_state")
	l.ExitKinds = enumValues(spec, "scx_exit_kind")
	var ev *btf.Struct
	l.HasEventStats = spec.TypeByName("scx_event_stats", &ev) == nil
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, f := range []Field{l.RqNrRunning, l.RqClock, l.RqCurr, l.RqScxNrRunning, l.RqScxLocalNr, l.RqScxFlags} {
		if f.OK() && f.Off+f.Size > l.RqSize {
			return nil, fmt.Errorf("BTF offset %d+%d lies outside struct rq (%d bytes)", f.Off, f.Size, l.RqSize)
		}
	}
	return l, nil
}
