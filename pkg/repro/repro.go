package repro

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/probe"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Failure is what a failed run says about its scheduler.
type Failure struct {
	// Why is one line: the scheduler's error exit, death or stall;
	// empty when the run failed for another reason (no auto-repro).
	Why string
	// Text is the scheduler's own output and its exit message: where
	// the exit dump's backtraces are.
	Text []byte
}

// maxText bounds the scheduler output Inspect keeps.
const maxText = 4 << 20

// Inspect reads a run's stream and says whether the scheduler failed:
// a sched_exit of an error kind (>= 1024: error, error_bpf, error_stall),
// a failed scheduler_died check, or a failed task_stall check. Corrupt
// regions are skipped; a read error is returned.
func Inspect(r io.Reader) (Failure, error) {
	var f Failure
	var text bytes.Buffer
	d := wire.NewDecoder(r)
	for {
		fr, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ce *wire.CorruptError
			if errors.As(err, &ce) {
				continue
			}
			var te *wire.TruncatedError
			if errors.As(err, &te) {
				break
			}
			return f, fmt.Errorf("read the run's stream: %w", err)
		}
		if fr.Flags&wire.FlagHost != 0 {
			continue
		}
		m, err := wire.Unmarshal(fr.Type, fr.Payload)
		if err != nil {
			continue
		}
		switch v := m.(type) {
		case wire.Output:
			if v.Program == wire.ProgramScheduler && text.Len()+len(v.Data) <= maxText {
				text.Write(v.Data)
			}
		case wire.SchedExit:
			if v.Message != "" {
				text.WriteString("\n" + v.Message + "\n")
			}
			if v.Kind >= 1024 && f.Why == "" {
				f.Why = fmt.Sprintf("the scheduler exited with %s (%d)", v.KindName, v.Kind)
				if v.Reason != "" {
					f.Why += ": " + v.Reason
				}
			}
		case wire.CheckResult:
			if !v.Pass && (v.Name == "scheduler_died" || v.Name == "task_stall") && f.Why == "" {
				f.Why = "check " + v.Name + " failed"
				if v.Detail != "" {
					f.Why += ": " + v.Detail
				}
			}
		}
	}
	f.Text = text.Bytes()
	return f, nil
}

// frameRE is one frame of a kernel stack trace as the kernel prints it
// ("  balance_one+0x1a/0x2c0", optionally after a "[<addr>]" or "? ").
var frameRE = regexp.MustCompile(`^\s*(?:\[<[0-9a-f]+>\]\s*)?(?:\?\s*)?([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+/0x[0-9a-f]+`)

// skip are functions of every stack trace: entry, interrupt, timer,
// wakeup, kthread and scheduler-core paths that say nothing of the
// failure and would fire all the time if probed (a generic probe takes a
// stack on every hit).
var skip = regexp.MustCompile(`^(irqentry_|try_to_wake_up|ttwu_|wake_up_|__wake_up|enqueue_task$|dequeue_task$|activate_task|deactivate_task|hrtimer_|__hrtimer_|tick_|update_process_times|sched_tick|scheduler_tick|__run_timer|run_timer_softirq|call_timer_fn|do_nanosleep|futex_|__futex|rcu_|__rcu|bpf_prog_|bpf__|__bpf_|bpf_trampoline|entry_|asm_|do_syscall_64|syscall_|__x64_sys_|x64_sys_call|ret_from_fork|kthread|worker_thread|process_one_work|__schedule|schedule|preempt_|__cond_resched|irq_|__irq|sysvec_|__sysvec_|do_idle|cpu_startup_entry|start_secondary|common_startup_64|rest_init|start_kernel|x86_64_start|secondary_startup|default_idle|arch_cpu_idle|finish_task_switch|smpboot_thread_fn|exc_|handle_|__do_softirq|do_softirq|run_ksoftirqd|dump_stack|show_stack|panic|scx_dump_state|scx_ops_exit_kind|scx_bpf_error_bstr)`)

// Funcs returns the kernel functions named in the stack traces of text
// (the console, the scheduler's output): the frames of a "Backtrace:"
// (the sched_ext exit dump's own stack) and of "Call Trace:" blocks, in
// the order first seen, without the ubiquitous ones (entry, irq, kthread,
// schedule, the BPF programs themselves) and at most probe.MaxExtra.
func Funcs(texts ...[]byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range texts {
		sc := bufio.NewScanner(bytes.NewReader(t))
		sc.Buffer(make([]byte, 4096), 1<<20)
		in := false
		for sc.Scan() {
			line := sc.Text()
			// Console lines may carry a printk time stamp.
			if i := strings.Index(line, "] "); strings.HasPrefix(line, "[") && i > 0 {
				line = line[i+2:]
			}
			trim := strings.TrimSpace(line)
			if trim == "Backtrace:" || trim == "Call Trace:" || strings.HasSuffix(trim, "Call Trace:") {
				in = true
				continue
			}
			if !in {
				continue
			}
			if trim == "</TASK>" {
				in = false
				continue
			}
			m := frameRE.FindStringSubmatch(line)
			if m == nil {
				if trim == "" || !strings.HasPrefix(trim, "<") { // <TASK>, <IRQ> markers continue a trace
					in = false
				}
				continue
			}
			fn := m[1]
			if i := strings.IndexByte(fn, '.'); i > 0 { // foo.isra.0, foo.cold: the symbol is foo's clone; probe foo
				fn = fn[:i]
			}
			if skip.MatchString(fn) || seen[fn] || !probe.ValidFunc(fn) {
				continue
			}
			seen[fn] = true
			out = append(out, fn)
			if len(out) == probe.MaxExtra {
				return out
			}
		}
	}
	return out
}
