package hostlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

// Exit statuses RunCommand gives for a command that could not be started,
// as env(1) and timeout(1) do.
const (
	ExitCannotExec = 126
	ExitNotFound   = 127
)

// ForwardedSignals are passed on to the command while it runs.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// RunCommand runs argv holding res: the command inherits the lock files
// (as descriptors 3 and up, so its flocks survive even if this process
// dies), gets res.Env() in its environment and, with pin, an affinity mask
// of res.CPUs. SIGINT, SIGTERM and SIGHUP are forwarded to it. It returns
// the command's exit status, 128+n when a signal n killed it, or
// ExitNotFound/ExitCannotExec with an error when it could not start.
//
// sigs, when not nil, is a channel already registered with signal.Notify
// for ForwardedSignals (so no signal is lost between acquiring and
// running); otherwise RunCommand registers its own.
func RunCommand(res *Reservation, argv []string, pin bool, sigs chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return ExitNotFound, fmt.Errorf("%s: command not found", argv[0])
		}
		return ExitCannotExec, fmt.Errorf("%s: %w", argv[0], err)
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Stdin: stdin, Stdout: stdout, Stderr: stderr,
		Env: withEnv(os.Environ(), res.Env()), ExtraFiles: res.Files()}

	if sigs == nil {
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, ForwardedSignals...)
		defer signal.Stop(sigs)
	}

	// Start from a locked OS thread: the child inherits that thread's
	// affinity, so with pin it is confined before its first instruction.
	// The thread is thrown away afterwards (no UnlockOSThread).
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if pin {
			if err := PinThread(res.CPUs); err != nil {
				started <- err
				return
			}
		}
		started <- cmd.Start()
	}()
	if err := <-started; err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, syscall.ENOENT) {
			return ExitNotFound, fmt.Errorf("%s: %w", argv[0], err)
		}
		return ExitCannotExec, fmt.Errorf("start %s: %w", argv[0], err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case err := <-waited:
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok {
				return 1, fmt.Errorf("wait %s: %v", argv[0], err)
			}
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
	}
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
