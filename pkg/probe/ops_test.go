package probe

import "testing"

func TestOpsTakesTask(t *testing.T) {
	for _, c := range []struct {
		prog string
		want bool
		ret  bool // OpsReturns
	}{
		{"qmap_enqueue", true, false},
		{"qmap_select_cpu", true, true},
		{"qmap_dispatch", false, false},
		{"qmap_dump_task", false, false}, // ends in "_task" but dump_task's first argument is the dump context
		{"qmap_init_task", true, true},
		{"qmap_init", false, true},
		{"qmap_exit_task", true, false},
		{"qmap_exit", false, false},
		{"qmap_dump_cpu", false, false},
		{"qmap_cpu_release", false, false},
		{"qmap_core_sched_before", true, false},
		{"simple_running", true, false},
		{"enqueue", true, false},
		{"myenqueue", false, false}, // not PREFIX_OP
		{"", false, false},
		{"qmap_unknown", false, false},
	} {
		if got := OpsTakesTask(c.prog); got != c.want {
			t.Errorf("OpsTakesTask(%q) = %v, want %v", c.prog, got, c.want)
		}
		if got := OpsReturns(c.prog); got != c.ret {
			t.Errorf("OpsReturns(%q) = %v, want %v", c.prog, got, c.ret)
		}
	}
}

// An fentry event on a callback: its raw arguments, its task, and for
// enqueue and dequeue the flags (args[1]) as the kprobes show them.
func TestOpsEventToWire(t *testing.T) {
	for _, c := range []struct {
		fn    string
		flags bool
	}{
		{"ops:qmap_enqueue", true},
		{"ops:qmap_dequeue", true},
		{"ops:qmap_dispatch", false},
		{"qmap_enqueue", false}, // a kprobe of that name is no callback
	} {
		var ev rawEvent
		ev.Func, ev.Fields = 0, fArgs|fTask
		ev.Args = [4]uint64{0xffff888000001000, 1 << 40, 7, 8}
		ev.TaskPid = 71
		copy(ev.TaskComm[:], "scheduler")
		p := toWire(&ev, []string{c.fn}, nil)
		if p.Func != c.fn || p.TaskPID == nil || *p.TaskPID != 71 || p.TaskComm != "scheduler" || len(p.Args) != 4 || p.Args[1] != 1<<40 {
			t.Errorf("%s: %+v", c.fn, p)
		}
		if got := p.EnqFlags != nil && *p.EnqFlags == 1<<40; got != c.flags {
			t.Errorf("%s: enq_flags %v, want set %v", c.fn, p.EnqFlags, c.flags)
		}
		if p.Ret != nil {
			t.Errorf("%s: ret %d without fRet", c.fn, *p.Ret)
		}
		ev.Fields |= fRet
		ev.Ret = -22
		if p := toWire(&ev, []string{c.fn}, nil); p.Ret == nil || *p.Ret != -22 {
			t.Errorf("%s with fRet: ret %v", c.fn, p.Ret)
		}
	}
}
