package guest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

const (
	scxState = "/sys/kernel/sched_ext/state"
	scxOps   = "/sys/kernel/sched_ext/root/ops"
)

// kmsgWatch follows /dev/kmsg from the moment it is opened and keeps the
// sched_ext events it sees.
type kmsgWatch struct {
	mu       sync.Mutex
	disabled *SchedEvent
	changed  chan struct{}
	f        *os.File
}

func startKmsg(e *env) *kmsgWatch {
	w := &kmsgWatch{changed: make(chan struct{}, 1)}
	f, err := os.Open("/dev/kmsg")
	if err != nil {
		e.logf("open /dev/kmsg: %v (the sched_ext disable reason will be missing)", err)
		return w
	}
	if _, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_END); err != nil {
		e.logf("seek /dev/kmsg: %v", err)
	}
	w.f = f
	go func() {
		var p KmsgParser
		buf := make([]byte, 8192)
		for {
			n, err := unix.Read(int(f.Fd()), buf)
			if err == unix.EPIPE || err == unix.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return
			}
			text, ok := KmsgRecord(string(buf[:n]))
			if !ok {
				continue
			}
			ev, ok := p.Line(text)
			if !ok {
				continue
			}
			w.mu.Lock()
			switch {
			case ev.Disabled:
				ev := ev
				w.disabled = &ev
			case ev.Message != "" && w.disabled != nil && w.disabled.Message == "":
				w.disabled.Message = ev.Message
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// waitDisabled waits up to d for a disable line (and, for error kinds, its
// message line) and returns what it has.
func (w *kmsgWatch) waitDisabled(d time.Duration) *SchedEvent {
	deadline := time.After(d)
	for {
		w.mu.Lock()
		ev := w.disabled
		var cp SchedEvent
		if ev != nil {
			cp = *ev
		}
		w.mu.Unlock()
		if ev != nil {
			kind, _ := ExitKind(cp.Reason)
			if kind < 1024 || cp.Message != "" {
				return &cp
			}
		}
		select {
		case <-w.changed:
		case <-deadline:
			if ev != nil {
				return &cp
			}
			return nil
		}
	}
}

// schedProc is the running scheduler.
type schedProc struct {
	cmd    *exec.Cmd
	name   string
	exited chan struct{} // closed when the process has been waited for
	state  *os.ProcessState
	outs   sync.WaitGroup
	kmsg   *kmsgWatch
}

// pumpOutput copies r into Output frames for program prog (and echoes to
// the console) until EOF.
func pumpOutput(e *env, r io.Reader, stream uint8, prog uint32, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				data := append([]byte(nil), buf[:n]...)
				e.send(wire.Output{Stream: stream, Program: prog, Data: data})
				_, _ = e.console.Write(data)
			}
			if err != nil {
				return
			}
		}
	}()
}

// startCaptured starts cmd with stdout and stderr captured as Output
// frames of program prog.
func startCaptured(e *env, cmd *exec.Cmd, prog uint32, wg *sync.WaitGroup) error {
	or, ow, err := os.Pipe()
	if err != nil {
		return err
	}
	er, ew, err := os.Pipe()
	if err != nil {
		or.Close()
		ow.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = ow, ew
	err = cmd.Start()
	ow.Close()
	ew.Close()
	if err != nil {
		or.Close()
		er.Close()
		return err
	}
	pumpOutput(e, or, wire.StreamStdout, prog, wg)
	pumpOutput(e, er, wire.StreamStderr, prog, wg)
	return nil
}

func baseEnv(extra map[string]string) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/tmp", "TERM=dumb"}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

func startScheduler(e *env, s *runconfig.Scheduler, extraEnv map[string]string, kw *kmsgWatch) (*schedProc, error) {
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = baseEnv(extraEnv)
	cmd.Dir = "/tmp"
	sp := &schedProc{cmd: cmd, name: s.Name, exited: make(chan struct{}), kmsg: kw}
	if err := startCaptured(e, cmd, wire.ProgramScheduler, &sp.outs); err != nil {
		return nil, fmt.Errorf("start scheduler %s: %w", s.Path, err)
	}
	go func() {
		_ = cmd.Wait()
		sp.state = cmd.ProcessState
		close(sp.exited)
	}()
	return sp, nil
}

func (sp *schedProc) alive() bool {
	select {
	case <-sp.exited:
		return false
	default:
		return true
	}
}

func readSys(p string) (string, error) {
	b, err := os.ReadFile(p)
	return strings.TrimSpace(string(b)), err
}

// waitAttach polls sched_ext sysfs until the scheduler is enabled with its
// ops registered, the process exits, or timeout plus grace() passes
// (grace: time the init spent beside it that the scheduler waited for;
// nil for none).
func (sp *schedProc) waitAttach(timeout time.Duration, grace func() time.Duration) (ops string, err error) {
	deadline := time.Now().Add(timeout)
	why := "sched_ext sysfs absent (kernel without CONFIG_SCHED_CLASS_EXT?)"
	for {
		if !sp.alive() {
			return "", errDiedEarly
		}
		st, serr := readSys(scxState)
		if serr == nil {
			why = "state " + st
			ops, _ = readSys(scxOps)
			if st == "enabled" && ops != "" {
				return ops, nil
			}
		}
		var g time.Duration
		if grace != nil {
			g = grace()
		}
		if time.Now().After(deadline.Add(g)) {
			if g > 0 {
				return "", fmt.Errorf("not attached after %v (+%v spent probing its callbacks): %s", timeout, g.Round(time.Millisecond), why)
			}
			return "", fmt.Errorf("not attached after %v: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errDiedEarly = errors.New("scheduler exited before attaching")

// watch closes died when the scheduler exits or sched_ext leaves the
// enabled state; it stops when stop is closed.
func (sp *schedProc) watch(died chan<- string, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-sp.exited:
			died <- "scheduler process exited"
			return
		case <-t.C:
			if st, err := readSys(scxState); err == nil && st != "enabled" {
				died <- "sched_ext state " + st
				return
			}
		}
	}
}

// stop ends a healthy scheduler: SIGINT (clean unregister), then SIGKILL.
func (sp *schedProc) stop() {
	if !sp.alive() {
		return
	}
	_ = sp.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-sp.exited:
		return
	case <-time.After(5 * time.Second):
	}
	_ = sp.cmd.Process.Kill()
	select {
	case <-sp.exited:
	case <-time.After(3 * time.Second):
	}
}

// exitFrame builds the scheduler-exit frame from the kernel log and the
// process status, waiting briefly for both.
func (sp *schedProc) exitFrame() wire.SchedExit {
	ev := sp.kmsg.waitDisabled(2 * time.Second)
	select {
	case <-sp.exited:
	case <-time.After(2 * time.Second):
	}
	drained := make(chan struct{})
	go func() { sp.outs.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(time.Second):
	}
	var x wire.SchedExit
	if ev != nil {
		x.Kind, x.KindName = ExitKind(ev.Reason)
		x.Reason, x.Message = ev.Reason, ev.Message
	} else {
		x.KindName = "unknown"
		x.Reason = "no sched_ext disable line in the kernel log"
	}
	if sp.state != nil {
		if ws, ok := sp.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			x.Signal = unix.SignalName(ws.Signal())
		} else {
			c := sp.state.ExitCode()
			x.ExitCode = &c
		}
	}
	return x
}
