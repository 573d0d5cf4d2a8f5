package probe

import "testing"

func TestOpsTakesTask(t *testing.T) {
	for _, c := range []struct {
		prog string
		want bool
	}{
		{"qmap_enqueue", true},
		{"qmap_select_cpu", true},
		{"qmap_dispatch", false},
		{"qmap_dump_task", false}, // ends in "_task" but dump_task's first argument is the dump context
		{"qmap_init_task", true},
		{"qmap_init", false},
		{"qmap_exit_task", true},
		{"qmap_exit", false},
		{"qmap_dump_cpu", false},
		{"qmap_cpu_release", false},
		{"qmap_core_sched_before", true},
		{"simple_running", true},
		{"enqueue", true},
		{"myenqueue", false}, // not PREFIX_OP
		{"", false},
		{"qmap_unknown", false},
	} {
		if got := OpsTakesTask(c.prog); got != c.want {
			t.Errorf("OpsTakesTask(%q) = %v, want %v", c.prog, got, c.want)
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
	}
}
