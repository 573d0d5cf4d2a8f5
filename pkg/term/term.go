package term

import (
	"fmt"
	"os"
	"os/exec"
	"sync"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// Raw is a terminal in raw mode; Restore puts the saved settings back.
type Raw struct {
	fd    int
	saved unix.Termios
	once  sync.Once
	err   error
	// guard is the pipe to the guard child (guard.go), if any.
	guard    *os.File
	guardCmd *exec.Cmd
}

// makeRaw switches fd to raw mode (no echo, no line editing, no signal
// keys, 8-bit clean, output post-processing kept so "\n" still returns
// the carriage) and returns the handle that restores it.
func makeRaw(fd int) (*Raw, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("stdin is not a terminal (--shell needs one; use --exec for scripts): %w", err)
	}
	r := &Raw{fd: fd, saved: *t}
	raw := *t
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	return r, nil
}

// Restore puts the terminal back as makeRaw found it. It is safe to call
// more than once and from several goroutines; only the first call acts.
func (r *Raw) Restore() error {
	r.once.Do(func() {
		r.err = unix.IoctlSetTermios(r.fd, unix.TCSETS, &r.saved)
		if r.guard != nil {
			r.guard.Close() // the guard restores the same settings and exits
			r.guardCmd.Wait()
		}
	})
	return r.err
}

// Escape is the Ctrl-A command filter for keyboard input.
type Escape struct {
	pending bool
}

// CtrlA is the escape key.
const CtrlA = 0x01

// Filter passes keyboard bytes through to the guest, minus escape
// sequences: Ctrl-A x (or X) asks to quit (the bytes after it are
// dropped), Ctrl-A Ctrl-A sends one Ctrl-A, and Ctrl-A followed by
// anything else sends nothing. A Ctrl-A at the end of in waits for the
// next call.
func (e *Escape) Filter(in []byte) (out []byte, quit bool) {
	out = make([]byte, 0, len(in))
	for _, b := range in {
		if e.pending {
			e.pending = false
			switch b {
			case 'x', 'X':
				return out, true
			case CtrlA:
				out = append(out, CtrlA)
			}
			continue
		}
		if b == CtrlA {
			e.pending = true
			continue
		}
		out = append(out, b)
	}
	return out, false
}
