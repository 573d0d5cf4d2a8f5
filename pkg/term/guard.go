package term

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A guard is a small child process (this same binary, re-executed) that
// holds the terminal's saved settings and puts them back when its parent
// goes away by any route Go cannot intercept: a panic in another
// goroutine, a fatal runtime error, SIGKILL. It learns of the parent's end
// from a pipe reaching EOF. It sits in its own process group and ignores
// the job-control and termination signals, so a kill of the parent's
// group or a hang-up does not take it first.

const guardEnv = "KTSTR_TERM_GUARD"

// MaybeGuard must be the first thing main does in a binary that uses
// Guard: in the guard child it waits, restores the terminal and exits; in
// any other process it returns at once.
func MaybeGuard() {
	v := os.Getenv(guardEnv)
	if v == "" {
		return
	}
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGTTOU, unix.SIGTTIN, unix.SIGQUIT, unix.SIGTSTP)
	saved, err := decodeTermios(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "terminal guard: %v\n", err)
		os.Exit(1)
	}
	pipe := os.NewFile(3, "guard-pipe")
	var b [1]byte
	for {
		if _, err := pipe.Read(b[:]); err != nil {
			break // the parent is gone or done
		}
	}
	unix.IoctlSetTermios(0, unix.TCSETS, saved)
	os.Exit(0)
}

func encodeTermios(t *unix.Termios) string {
	return hex.EncodeToString(unsafe.Slice((*byte)(unsafe.Pointer(t)), unsafe.Sizeof(*t)))
}

func decodeTermios(s string) (*unix.Termios, error) {
	b, err := hex.DecodeString(s)
	var t unix.Termios
	if err != nil || len(b) != int(unsafe.Sizeof(t)) {
		return nil, fmt.Errorf("bad saved terminal settings")
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&t)), unsafe.Sizeof(t)), b)
	return &t, nil
}

// Guard starts the guard child for r. Restore stops it (after restoring
// itself). The binary must call MaybeGuard at the top of main.
func (r *Raw) Guard() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("terminal guard: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("terminal guard: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), guardEnv+"="+encodeTermios(&r.saved))
	cmd.Stdin = os.NewFile(uintptr(r.fd), "tty")
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{pr}
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("terminal guard: %w", err)
	}
	pr.Close()
	r.guard = pw
	r.guardCmd = cmd
	return nil
}
