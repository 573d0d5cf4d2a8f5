package probe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Which optional fields an event carries: enum field in bpf/recorder.h.
const (
	fTask    = 1 << 0
	fRq      = 1 << 1
	fDSQ     = 1 << 2
	fEnq     = 1 << 3
	fArgs    = 1 << 4
	fText    = 1 << 5
	fStack   = 1 << 6
	fExit    = 1 << 7
	fTaskDSQ = 1 << 8
	fRet     = 1 << 9
)

const stackDepth = 16

// rawEvent is struct event of bpf/recorder.h, byte for byte (little endian,
// no padding: TestRawEventLayout holds it to bpf2go's bpfEvent).
type rawEvent struct {
	Ts             uint64
	Args           [4]uint64
	DsqID          uint64
	TaskDsqID      uint64
	EnqFlags       uint64
	Cpumask        uint64
	Slice          uint64
	Stack          [stackDepth]uint64
	Func           uint32
	Fields         uint32
	CPU            uint32
	Pid            uint32
	TaskPid        int32
	RqCPU          int32
	RqNrRunning    uint32
	RqScxNrRunning uint32
	DsqNr          uint32
	Nstack         uint32
	Comm           [16]byte
	TaskComm       [16]byte
	Text           [64]byte
	Ret            int64
}

// rawEventSize is sizeof(struct event).
var rawEventSize = binary.Size(rawEvent{})

// decodeEvent reads one ring-buffer record. The record comes from the
// kernel, but is checked all the same: a short record is an error.
func decodeEvent(b []byte) (rawEvent, error) {
	var ev rawEvent
	if len(b) < rawEventSize {
		return ev, fmt.Errorf("probe record of %d bytes, want %d", len(b), rawEventSize)
	}
	if _, err := binary.Decode(b[:rawEventSize], binary.LittleEndian, &ev); err != nil {
		return ev, fmt.Errorf("probe record: %w", err)
	}
	return ev, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// toWire turns a record into its frame. funcs names the cookies; syms
// resolves stack addresses (nil: shown as numbers).
func toWire(ev *rawEvent, funcs []string, syms *Symtab) wire.ProbeEvent {
	p := wire.ProbeEvent{TimeNS: ev.Ts, CPU: int(ev.CPU), PID: int(ev.Pid), Comm: cstr(ev.Comm[:])}
	if int(ev.Func) < len(funcs) {
		p.Func = funcs[ev.Func]
	} else {
		p.Func = fmt.Sprintf("probe#%d", ev.Func)
	}
	if ev.Fields&fTask != 0 {
		pid, mask, slice := int(ev.TaskPid), ev.Cpumask, ev.Slice
		p.TaskPID, p.CPUMask, p.Slice, p.TaskComm = &pid, &mask, &slice, cstr(ev.TaskComm[:])
	}
	if ev.Fields&fTaskDSQ != 0 {
		d := ev.TaskDsqID
		p.TaskDSQ = &d
	}
	if ev.Fields&fDSQ != 0 {
		d := ev.DsqID
		p.DSQ = &d
		if ev.DsqNr != 0 || p.Func != "scx_bpf_dispatch" {
			n := ev.DsqNr
			p.DSQNr = &n
		}
	}
	if ev.Fields&fEnq != 0 {
		f := ev.EnqFlags
		p.EnqFlags = &f
	}
	if ev.Fields&fRq != 0 {
		c, n, s := int(ev.RqCPU), ev.RqNrRunning, ev.RqScxNrRunning
		p.RqCPU, p.RqNr, p.RqScxNr = &c, &n, &s
	}
	if ev.Fields&fExit != 0 {
		k, c := int(int32(ev.Args[0])), int64(ev.Args[1])
		p.ExitKind, p.ExitCode, p.Trigger = &k, &c, true
	} else if ev.Fields&fArgs != 0 {
		p.Args = append([]uint64(nil), ev.Args[:]...)
	}
	// enqueue(p, enq_flags) and dequeue(p, deq_flags): show the flags
	// as the kprobes on the core's enqueue and dequeue do.
	if op := strings.TrimPrefix(p.Func, OpsPrefix); op != p.Func && ev.Fields&fArgs != 0 {
		if o := opOf(op); o == "enqueue" || o == "dequeue" {
			f := ev.Args[1]
			p.EnqFlags = &f
		}
	}
	if ev.Fields&fRet != 0 {
		r := ev.Ret
		p.Ret = &r
	}
	if ev.Fields&fText != 0 {
		p.Text = cstr(ev.Text[:])
	}
	if ev.Fields&fStack != 0 {
		n := min(int(ev.Nstack), stackDepth)
		for _, a := range ev.Stack[:n] {
			if a != 0 {
				p.Stack = append(p.Stack, syms.Lookup(a))
			}
		}
	}
	return p
}
