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
