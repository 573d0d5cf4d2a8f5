package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// The task-stall check: every task of the guest (kernel threads, the
// init's children, the scheduler, the workers), not only the scenario's
// workers, must run within a threshold of becoming runnable. It is a
// guest-side scan of /proc, every ScanInterval:
//
//   - a task is "waiting" when its state is R (runnable) and its run time
//     (/proc/PID/task/TID/schedstat, field 1: se.sum_exec_runtime) did not
//     change since the previous scan;
//   - its waiting time grows by the time since the previous scan, but by
//     at most two scan intervals: when the scan itself ran late, the
//     guest as a whole was not running (the host did not run it, or the
//     VM was paused), and that time is not the scheduler's;
//   - any run (a change of run time) or leaving state R resets it;
//   - waiting longer than the threshold is a stall: a failed task_stall
//     check naming the task, sent at once.
//
// Per-CPU accounting (/proc/stat) cannot tell a vCPU that the host did
// not run from an idle CPU whose NOHZ idle time is not yet accounted, and
// a task that a sched_ext scheduler holds in a BPF queue is on no CPU at
// all; so a single vCPU preempted on the host for longer than the
// threshold while the others run would be charged. perf mode (one host
// CPU per vCPU) or a larger ktstr.task_stall_ms avoids that.
//
// Why the guest and not the host monitor: the guest's /proc names every
// task and its state on any kernel without knowing struct layouts, and it
// works the same under ktstr-boot and QEMU. It does not depend on the
// sched_ext watchdog, whose timeout a scheduler may set to 30 s.
//
// The scan is a process of its own at SCHED_FIFO (see below); if the
// whole guest stops, it stops too, and the host sees that
// (ktstr-monitor's runqueue-clock stall, ktstr-boot's silence warning).

// Defaults of the task-stall check.
const (
	DefaultTaskStall = 2 * time.Second
	ScanInterval     = 250 * time.Millisecond
	// maxStallReports bounds the failed checks one run sends.
	maxStallReports = 8
	// maxCredit bounds what one scan interval can add to a wait.
	maxCredit = 2 * ScanInterval
)

// CheckTaskStall is the check's name.
const CheckTaskStall = "task_stall"

// taskSample is one task as one scan saw it.
type taskSample struct {
	tid     int
	pid     int
	comm    string
	state   byte
	cpu     int
	runtime uint64 // ns
}

// stallTracker is the check's logic over successive scans, without I/O.
type stallTracker struct {
	threshold time.Duration
	tasks     map[int]*trackedTask
	last      time.Duration
	gen       uint64
	maxWait   time.Duration // longest wait seen (for the passing report)
	maxTask   string
	reported  map[int]bool
}

type trackedTask struct {
	runtime uint64
	waiting time.Duration
	state   byte
	gen     uint64
}

// stall is one finding.
type stall struct {
	task    taskSample
	waiting time.Duration
}

func newStallTracker(threshold time.Duration) *stallTracker {
	return &stallTracker{threshold: threshold, tasks: map[int]*trackedTask{}, reported: map[int]bool{}}
}

// scan takes one scan made at time now (any monotonic base) and returns
// new stalls.
func (s *stallTracker) scan(now time.Duration, tasks []taskSample) []stall {
	first := s.gen == 0
	s.gen++
	credit := min(now-s.last, maxCredit)
	s.last = now
	var out []stall
	for _, t := range tasks {
		tt := s.tasks[t.tid]
		if tt == nil {
			tt = &trackedTask{runtime: t.runtime, state: t.state}
			s.tasks[t.tid] = tt
			tt.gen = s.gen
			continue
		}
		tt.gen = s.gen
		if !first && t.state == 'R' && tt.state == 'R' && t.runtime == tt.runtime {
			tt.waiting += credit
		} else {
			tt.waiting = 0
		}
		tt.runtime, tt.state = t.runtime, t.state
		if tt.waiting > s.maxWait {
			s.maxWait = tt.waiting
			s.maxTask = taskName(t)
		}
		if tt.waiting > s.threshold && !s.reported[t.tid] {
			s.reported[t.tid] = true
			out = append(out, stall{t, tt.waiting})
		}
	}
	for tid, tt := range s.tasks { // forget tasks that went away
		if tt.gen != s.gen {
			delete(s.tasks, tid)
		}
	}
	return out
}

// waitingNow reports whether some task has been waiting for more than d.
func (s *stallTracker) waitingNow(d time.Duration) bool {
	for _, tt := range s.tasks {
		if tt.waiting > d {
			return true
		}
	}
	return false
}

func taskName(t taskSample) string {
	if t.pid != t.tid {
		return fmt.Sprintf("%s[%d] (thread of %d)", t.comm, t.tid, t.pid)
	}
	return fmt.Sprintf("%s[%d]", t.comm, t.tid)
}

// parseTaskStat parses /proc/PID/task/TID/stat: the comm in parentheses
// (which may itself hold ')' and spaces), the state, and field 39, the
// CPU. It returns ok false for anything malformed.
func parseTaskStat(b []byte) (comm string, state byte, cpu int, ok bool) {
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 0 || close < open || close+2 >= len(b) {
		return "", 0, 0, false
	}
	comm = string(b[open+1 : close])
	rest := bytes.Fields(b[close+1:])
	// rest[0] is field 3 (state); field 39 (processor) is rest[36].
	if len(rest) < 37 || len(rest[0]) != 1 {
		return "", 0, 0, false
	}
	cpu, err := strconv.Atoi(string(rest[36]))
	if err != nil {
		return "", 0, 0, false
	}
	return comm, rest[0][0], cpu, true
}

// parseSchedstat returns the first field of /proc/.../schedstat: the
// task's run time in ns.
func parseSchedstat(b []byte) (uint64, bool) {
	f := bytes.Fields(b)
	if len(f) < 1 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(f[0]), 10, 64)
	return v, err == nil
}

// readTasks lists every task under procDir with its state, CPU and, for
// runnable ones, its run time. Tasks that vanish mid-scan are skipped.
func readTasks(procDir string, buf []byte) []taskSample {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	var out []taskSample
	for _, pe := range ents {
		pid, err := strconv.Atoi(pe.Name())
		if err != nil {
			continue
		}
		tdir := procDir + "/" + pe.Name() + "/task"
		tents, err := os.ReadDir(tdir)
		if err != nil {
			continue
		}
		for _, te := range tents {
			tid, err := strconv.Atoi(te.Name())
			if err != nil {
				continue
			}
			base := tdir + "/" + te.Name()
			b, ok := readSmall(base+"/stat", buf)
			if !ok {
				continue
			}
			comm, state, cpu, ok := parseTaskStat(b)
			if !ok {
				continue
			}
			t := taskSample{tid: tid, pid: pid, comm: comm, state: state, cpu: cpu}
			if state == 'R' {
				b, ok := readSmall(base+"/schedstat", buf)
				if !ok {
					continue
				}
				if t.runtime, ok = parseSchedstat(b); !ok {
					continue
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// readSmall reads a small /proc file into buf.
func readSmall(path string, buf []byte) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	n, err := f.Read(buf)
	if err != nil || n == 0 {
		return nil, false
	}
	return buf[:n], true
}

// The observer must not be scheduled by the scheduler under test.
// sched_ext schedules the fair-class tasks only, so the init and the scan
// run at SCHED_FIFO priority 1 (RT throttling, sched_rt_runtime_us, still
// bounds them). Seen before this: scx_qmap -t stalled one of the init's
// Go threads, and the whole init, scan included, stopped at the Go
// runtime's next stop-the-world until the kernel's own watchdog fired
// 5 s later.
//
//   - The init's threads run SCHED_FIFO with reset-on-fork
//     (RealtimeThreads): every child (scheduler, workers, payloads) starts
//     with the normal policy and stays under test.
//   - Reset-on-fork also gives the threads that the Go runtime starts
//     later the normal policy; the scan puts the init's threads back at
//     SCHED_FIFO every time it runs, so a new init thread is under the
//     scheduler for at most one scan interval.
//   - The scan is a process of its own (/init __ktstr_stallwatch),
//     started from a SCHED_FIFO thread without reset-on-fork, so that all
//     its threads are SCHED_FIFO and nothing in the init (a stalled Go
//     thread holding up a stop-the-world) can stop it. It reports on its
//     standard output, one JSON line per finding, and on the console.

// StallWatchArg is the first argument that makes ktstr-init the scan.
const StallWatchArg = "__ktstr_stallwatch"

var (
	fifoReset = unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	fifoKeep  = unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
)

// RealtimeThreads puts every thread of process pid that is not yet at
// SCHED_FIFO there, with reset-on-fork.
func RealtimeThreads(pid int) error { return setThreads(pid, fifoReset) }

// NormalThreads puts every thread of process pid back to SCHED_OTHER:
// the init leaves SCHED_FIFO once the scan has stopped, so that stopping
// the scheduler and the workers (a scheduler's exit waits on RCU, whose
// kthread the scheduler under test schedules) is not done at a priority
// that nothing in the guest's fair class can preempt.
func NormalThreads(pid int) error {
	return setThreads(pid, unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL})
}

// setThreads gives every thread of process pid that is not at attr's
// policy yet that policy. Threads that exit meanwhile are skipped; the
// first other failure is returned after trying them all.
func setThreads(pid int, attr unix.SchedAttr) error {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return err
	}
	var firstErr error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cur, err := unix.SchedGetAttr(tid, 0); err == nil && cur.Policy == attr.Policy {
			continue
		}
		a := attr
		if err := unix.SchedSetAttr(tid, &a, 0); err != nil && firstErr == nil && !errors.Is(err, unix.ESRCH) {
			firstErr = fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return firstErr
}

// stallLine is one line of the scan's output.
type stallLine struct {
	Stall *wire.CheckResult `json:"stall,omitempty"` // a failure, as found
	Done  *wire.CheckResult `json:"done,omitempty"`  // the final result
	Log   string            `json:"log,omitempty"`
}

// RunStallWatch is the scan process: /init __ktstr_stallwatch
// THRESHOLD_MS. It scans until its standard input ends, settles, prints
// the final result and exits 0.
func RunStallWatch(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: "+StallWatchArg+" THRESHOLD_MS")
		return 2
	}
	ms, err := strconv.Atoi(args[0])
	if err != nil || ms <= 0 {
		fmt.Fprintln(os.Stderr, StallWatchArg+": bad threshold "+args[0])
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	keepInit := os.Getppid() == 1
	w := &stallScan{tr: newStallTracker(time.Duration(ms) * time.Millisecond), procDir: "/proc"}
	w.report = func(c wire.CheckResult) {
		out.Encode(stallLine{Stall: &c})
		fmt.Fprintf(os.Stderr, "ktstr-init: task stall: %s\n", c.Detail)
	}
	w.keep = func() {
		if keepInit {
			if err := RealtimeThreads(1); err != nil && !w.rtWarned {
				w.rtWarned = true
				out.Encode(stallLine{Log: fmt.Sprintf("task_stall: cannot keep the init's threads at SCHED_FIFO: %v", err)})
			}
		}
	}
	c, _ := w.run(stop)
	out.Encode(stallLine{Done: &c})
	return 0
}

// stallScan is the scan loop over a stallTracker.
type stallScan struct {
	tr       *stallTracker // its threshold is the check's
	procDir  string
	found    []stall
	scans    int
	report   func(wire.CheckResult)
	keep     func()
	rtWarned bool
}

func (w *stallScan) once(buf []byte) {
	if w.keep != nil {
		w.keep()
	}
	tasks := readTasks(w.procDir, buf)
	w.scans++
	for _, s := range w.tr.scan(time.Duration(nanotime()), tasks) {
		if len(w.found) >= maxStallReports {
			break
		}
		w.found = append(w.found, s)
		w.report(w.check(s))
	}
}

func (w *stallScan) check(s stall) wire.CheckResult {
	return wire.CheckResult{Name: CheckTaskStall, Pass: false, Step: checkScenarioWideID, Unit: "ms",
		Threshold: float64(w.tr.threshold.Milliseconds()), Observed: float64(s.waiting.Milliseconds()),
		Detail: fmt.Sprintf("%s runnable on cpu%d for %.1f s without running", taskName(s.task), s.task.cpu, s.waiting.Seconds())}
}

// run scans every ScanInterval until stop is closed, then gives a task
// that is waiting at that moment up to the threshold to run or to cross
// it (a healthy guest has none and ends at once), and returns the final
// result and whether any task stalled.
func (w *stallScan) run(stop <-chan struct{}) (wire.CheckResult, bool) {
	buf := make([]byte, 4096)
	t := time.NewTicker(ScanInterval)
	defer t.Stop()
	w.once(buf)
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-t.C:
			w.once(buf)
		}
	}
	for range int((w.tr.threshold + ScanInterval) / ScanInterval) {
		if !w.tr.waitingNow(ScanInterval) || len(w.found) >= maxStallReports {
			break
		}
		<-t.C
		w.once(buf)
	}
	return w.result()
}

func (w *stallScan) result() (wire.CheckResult, bool) {
	if len(w.found) > 0 {
		c := w.check(w.found[0])
		if len(w.found) > 1 {
			names := make([]string, 0, len(w.found))
			for _, s := range w.found {
				names = append(names, taskName(s.task))
			}
			slices.Sort(names)
			c.Detail += fmt.Sprintf("; %d tasks stalled: %v", len(w.found), names)
		}
		return c, true
	}
	detail := fmt.Sprintf("%d scans every %s; no task waited longer than %.2f s", w.scans, ScanInterval, w.tr.maxWait.Seconds())
	if w.tr.maxTask != "" {
		detail += " (" + w.tr.maxTask + ")"
	}
	return wire.CheckResult{Name: CheckTaskStall, Pass: true, Step: checkScenarioWideID, Unit: "ms",
		Threshold: float64(w.tr.threshold.Milliseconds()), Observed: float64(w.tr.maxWait.Milliseconds()), Detail: detail}, false
}

// taskStallWatch is the init's side of the scan process.
type taskStallWatch struct {
	e         *env
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	done      chan struct{}
	final     *wire.CheckResult
	stalls    int
	threshold time.Duration
}

// startTaskStallWatch starts the scan process (a threshold of 0 means
// the default). It never fails the run by itself: a scan that cannot
// start is logged and reported by finish as a failed check.
func startTaskStallWatch(e *env, threshold time.Duration) *taskStallWatch {
	if threshold <= 0 {
		threshold = DefaultTaskStall
	}
	w := &taskStallWatch{e: e, done: make(chan struct{}), threshold: threshold}
	if os.Getpid() == 1 {
		// The init runs at SCHED_FIFO while the scan runs (see above);
		// finish's caller puts it back (NormalThreads).
		if err := RealtimeThreads(1); err != nil {
			e.logf("cannot run the init at SCHED_FIFO: %v; a scheduler that stalls the init's threads can stall its checks", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	w.cmd = exec.Command(self, StallWatchArg, strconv.FormatInt(threshold.Milliseconds(), 10))
	w.cmd.Args[0] = "ktstr-stallwatch"
	w.cmd.Stderr = e.console
	stdout, err := w.cmd.StdoutPipe()
	if err == nil {
		w.stdin, err = w.cmd.StdinPipe()
	}
	if err == nil {
		err = startRealtime(w.cmd)
	}
	if err != nil {
		e.logf("task_stall: cannot start the scan: %v", err)
		close(w.done)
		return w
	}
	go w.read(stdout)
	return w
}

// startRealtime starts cmd from a SCHED_FIFO thread without reset-on-fork,
// so that the process and every thread it starts are SCHED_FIFO, then
// puts the thread back to reset-on-fork.
func startRealtime(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		keep := fifoKeep
		if os.Getpid() == 1 {
			if err := unix.SchedSetAttr(0, &keep, 0); err != nil {
				errc <- fmt.Errorf("SCHED_FIFO for the scan: %w", err)
				return
			}
			defer func() { back := fifoReset; unix.SchedSetAttr(0, &back, 0) }()
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func (w *taskStallWatch) read(r io.Reader) {
	defer close(w.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var l stallLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch {
		case l.Stall != nil:
			w.stalls++
			w.e.send(*l.Stall)
		case l.Done != nil:
			w.final = l.Done
		case l.Log != "":
			w.e.logf("%s", l.Log)
		}
	}
}

// finish stops the scan and returns its final check, and whether it is
// one that was already sent (the failures were sent as they were found).
// A scan that ended without a result is a failed check: nothing may pass
// unchecked.
func (w *taskStallWatch) finish() (c wire.CheckResult, sent bool) {
	if w.stdin != nil {
		w.stdin.Close()
	}
	select {
	case <-w.done:
	case <-time.After(w.threshold + 10*time.Second):
		if w.cmd.Process != nil {
			w.cmd.Process.Kill()
		}
		<-w.done
	}
	if w.cmd.Process != nil {
		w.cmd.Wait()
	}
	if w.final == nil {
		return wire.CheckResult{Name: CheckTaskStall, Pass: false, Step: checkScenarioWideID, Unit: "ms",
			Threshold: float64(w.threshold.Milliseconds()), Detail: "the task-stall scan ended without a result (see the console)"}, false
	}
	return *w.final, !w.final.Pass && w.stalls > 0
}
