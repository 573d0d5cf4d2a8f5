package hostlock

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/ktstr-go/ktstr/pkg/cpupin"

	"golang.org/x/sys/unix"
)

// Exit statuses runCommand gives for a command that could not be started,
// as env(1) and timeout(1) do.
const (
	ExitCannotExec = 126
	ExitNotFound   = 127
)

// ForwardedSignals are passed on to the command while it runs.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// runCommand runs argv holding res: the command inherits the lock files
// (at the descriptor numbers this process has them, so its flocks survive
// even if this process dies), gets res.Env() in its environment and, with pin, an affinity mask
// of res.CPUs. SIGINT, SIGTERM and SIGHUP are forwarded to it. It returns
// the command's exit status, 128+n when a signal n killed it, or
// ExitNotFound/ExitCannotExec with an error when it could not start.
//
// sigs, when not nil, is a channel already registered with signal.Notify
// for ForwardedSignals (so no signal is lost between acquiring and
// running); otherwise runCommand registers its own.
//
// It uses fork/exec and wait4 directly rather than os/exec: no goroutine
// per wait, no poller, which keeps ktstr-hostlock's cost per run close to
// flock(1)'s (bench/hostlock.sh).
func runCommand(res *Reservation, argv []string, pin bool, sigs chan os.Signal, stdin, stdout, stderr *os.File) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return ExitNotFound, fmt.Errorf("%s: command not found", argv[0])
		}
		return ExitCannotExec, fmt.Errorf("%s: %w", argv[0], err)
	}
	// The lock files are inherited at their own descriptor numbers (their
	// close-on-exec flag cleared just for this), not moved to 3 and up:
	// descriptors the command was given on purpose (3>file, <(...)) stay
	// where they are.
	for _, f := range res.Files() {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
			return 1, fmt.Errorf("pass %s to %s: %w", f.Name(), argv[0], err)
		}
	}
	attr := &syscall.ProcAttr{Env: withEnv(os.Environ(), res.Env()),
		Files: []uintptr{stdin.Fd(), stdout.Fd(), stderr.Fd()}}

	if sigs == nil {
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, ForwardedSignals...)
		defer signal.Stop(sigs)
	}

	// With pin, start from a locked OS thread pinned to the CPUs: the
	// child inherits that thread's affinity, so it is confined before its
	// first instruction. The thread is thrown away afterwards (no
	// UnlockOSThread).
	var pid int
	if pin {
		type started struct {
			pid int
			err error
		}
		ch := make(chan started, 1)
		go func() {
			runtime.LockOSThread()
			if err := cpupin.Thread(res.CPUs); err != nil {
				ch <- started{0, err}
				return
			}
			pid, err := syscall.ForkExec(path, argv, attr)
			ch <- started{pid, err}
		}()
		st := <-ch
		pid, err = st.pid, st.err
	} else {
		pid, err = syscall.ForkExec(path, argv, attr)
	}
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return ExitNotFound, fmt.Errorf("%s: %w", argv[0], err)
		}
		return ExitCannotExec, fmt.Errorf("%s: %w", argv[0], err)
	}
	// Forward signals through a pidfd: it names this child even after it
	// has been reaped, so a late signal can never hit a recycled pid.
	pidfd, perr := unix.PidfdOpen(pid, 0)
	done := make(chan struct{})
	fwd := make(chan struct{})
	go func() {
		defer close(fwd)
		for {
			select {
			case s := <-sigs:
				if perr == nil {
					unix.PidfdSendSignal(pidfd, s.(syscall.Signal), nil, 0)
				} else {
					syscall.Kill(pid, s.(syscall.Signal))
				}
			case <-done:
				return
			}
		}
	}()
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	close(done)
	<-fwd
	if perr == nil {
		unix.Close(pidfd)
	}
	if err != nil {
		return 1, fmt.Errorf("wait for %s: %w", argv[0], err)
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// withEnv returns env with the assignments in set replacing any of the
// same names.
func withEnv(env, set []string) []string {
	out := make([]string, 0, len(env)+len(set))
	drop := map[string]bool{}
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}
