package probe

import (
	"strings"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// OpsPrefix starts the Func of a probe on one of the scheduler's
// struct_ops callbacks: "ops:qmap_enqueue" (wire.ProbeOpsPrefix).
const OpsPrefix = wire.ProbeOpsPrefix

// taskOps are the struct sched_ext_ops callbacks (Linux 6.12) whose first
// argument is a struct task_struct *.
var taskOps = []string{
	"select_cpu", "enqueue", "dequeue", "tick", "runnable", "running",
	"stopping", "quiescent", "yield", "core_sched_before", "set_weight",
	"set_cpumask", "init_task", "exit_task", "enable", "disable",
	"cgroup_prep_move", "cgroup_move", "cgroup_cancel_move",
}

// retOps are the callbacks whose s32 return value says what the
// scheduler decided: an fexit probe records it (select_cpu: the CPU
// picked; init_task, init: an error). Others return void or are too hot
// to double their events for.
var retOps = []string{"select_cpu", "init_task", "init"}

// OpsReturns says whether the struct_ops program named prog gets an fexit
// probe (retOps).
func OpsReturns(prog string) bool {
	op := opOf(prog)
	for _, r := range retOps {
		if op == r {
			return true
		}
	}
	return false
}

// otherOps are the other callbacks: a name that ends in one of them is not
// a task callback even where a task callback's name is a suffix of it
// ("dump_task" ends in "task", "exit_task" is not "exit").
var otherOps = []string{
	"dispatch", "update_idle", "cpu_acquire", "cpu_release", "init", "exit",
	"dump", "dump_cpu", "dump_task", "cgroup_init", "cgroup_exit",
	"cgroup_set_weight", "cpu_online", "cpu_offline",
}

// OpsTakesTask says whether the struct_ops program named prog (a
// scheduler's callback, by convention PREFIX_OP: qmap_enqueue,
// simple_running) is for a callback whose first argument is a task (see
// opOf); a name that matches no callback is not read as a task.
func OpsTakesTask(prog string) bool {
	op := opOf(prog)
	for _, t := range taskOps {
		if op == t {
			return true
		}
	}
	return false
}

// opOf is the sched_ext_ops callback the struct_ops program named prog
// is for, "" if none. The kernel does not tell which member of
// sched_ext_ops a program fills (bpf_prog_info has no member index), so
// the longest callback name that ends the program's name after an
// underscore (or is all of it) decides.
func opOf(prog string) string {
	best := ""
	for _, ops := range [][]string{taskOps, otherOps} {
		for _, op := range ops {
			if len(op) > len(best) && (prog == op || strings.HasSuffix(prog, "_"+op)) {
				best = op
			}
		}
	}
	return best
}
