package interactive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/ktstr-go/ktstr/pkg/term"
	"github.com/ktstr-go/ktstr/pkg/vmm"
)

// ExitNoStatus is the exit code when the guest ended without reporting the
// --exec command's status.
const ExitNoStatus = 126

// Request is what the user asked for: a shell, one command, or neither.
type Request struct {
	Shell   bool
	Exec    string
	HasExec bool // --exec was given (Exec may then still be empty: an error)
}

// ErrNoTerminal is Shell's answer when standard input is not a terminal.
var ErrNoTerminal = errors.New("--shell needs a terminal on standard input (use --exec CMD from scripts)")

// Cmdline returns the kernel command-line word for r ("" for neither), or
// an error that is the user's to fix.
func (r Request) Cmdline() (string, error) {
	switch {
	case r.Shell && r.HasExec:
		return "", errors.New("--shell and --exec exclude each other")
	case r.Shell:
		return runconfig.ShellCmdline(), nil
	case r.HasExec:
		if r.Exec == "" {
			return "", errors.New("--exec needs a command")
		}
		return runconfig.ExecCmdline(r.Exec), nil
	}
	return "", nil
}

// Outcome is how an interactive run ended: the process exit code and,
// when it is not 0, why.
type Outcome struct {
	Code int
	Err  error
}

// Shell runs cfg with the terminal on stdin/stdout talking to the guest's
// hvc0 in raw mode; notes go to diag. A closed connection (Ctrl-A X) is a
// success; otherwise the outcome is the VM's. The error is non-nil only
// when the run could not start (ErrNoTerminal, or the VM not built).
func Shell(cfg vmm.Config, stdin *os.File, stdout, diag io.Writer) (Outcome, error) {
	if !term.IsTerminal(int(stdin.Fd())) {
		return Outcome{}, ErrNoTerminal
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	quit := func() { stopOnce.Do(func() { close(stop) }) }
	cfg.Stream = io.Discard
	cfg.HVC = stdout
	cfg.ConsoleInput = &Keyboard{r: stdin, quit: quit}
	cfg.Stop = stop
	fmt.Fprintf(diag, "ktstr-boot: shell on the guest's hvc0; Ctrl-A X quits, Ctrl-A Ctrl-A sends Ctrl-A\n")
	var res vmm.Result
	err := term.Session(int(stdin.Fd()), func(sig <-chan struct{}) error {
		go func() {
			<-sig
			quit()
		}()
		var err error
		res, err = vmm.Run(cfg)
		return err
	})
	if err != nil {
		return Outcome{}, err
	}
	select {
	case <-stop:
		if res.Reason == vmm.ReasonStopped {
			fmt.Fprintf(diag, "\nktstr-boot: connection to the VM closed\n")
			return Outcome{}, nil
		}
	default:
	}
	return vmOutcome(res), nil
}

// Exec runs cfg (whose command line asks for a command) with hvc0's
// output passed to stdout without the status line. The outcome's code is
// the command's status when the guest reported it; the VM's when it
// failed; ExitNoStatus when the guest powered off without a status. The
// error is non-nil only when the VM could not be built.
func Exec(cfg vmm.Config, stdout io.Writer) (Outcome, error) {
	w := &ExecOutput{out: stdout}
	cfg.Stream = io.Discard
	cfg.HVC = w
	res, err := vmm.Run(cfg)
	if err != nil {
		return Outcome{}, err
	}
	w.Flush()
	if code, ok := w.Status(); ok {
		return commandOutcome(code), nil
	}
	if res.GuestCode != nil {
		return commandOutcome(res.ExitCode), nil
	}
	if res.ExitCode != 0 && res.Reason != vmm.ReasonPoweroff {
		return vmOutcome(res), nil
	}
	return Outcome{ExitNoStatus, fmt.Errorf("the guest ended (%s) without reporting the command's status: does its init implement %s? (see ktstr-boot(1), GUEST CONTRACT)", res.Reason, runconfig.ExecKey)}, nil
}

func commandOutcome(code int) Outcome {
	if code == 0 {
		return Outcome{}
	}
	return Outcome{code, fmt.Errorf("the command exited with status %d", code)}
}

func vmOutcome(res vmm.Result) Outcome {
	if res.ExitCode == 0 {
		return Outcome{}
	}
	return Outcome{res.ExitCode, errors.New(res.Summary())}
}

// Keyboard filters the terminal's bytes through the Ctrl-A escape: Ctrl-A
// X calls quit and ends the input.
type Keyboard struct {
	r    io.Reader
	esc  term.Escape
	quit func()
	done bool
}

// NewKeyboard reads r, calling quit once on Ctrl-A X.
func NewKeyboard(r io.Reader, quit func()) *Keyboard { return &Keyboard{r: r, quit: quit} }

func (k *Keyboard) Read(p []byte) (int, error) {
	for !k.done {
		n, err := k.r.Read(p)
		out, quit := k.esc.Filter(p[:n])
		copy(p, out)
		if quit {
			k.done = true
			k.quit()
			return len(out), io.EOF
		}
		if len(out) > 0 || err != nil {
			return len(out), err
		}
	}
	return 0, io.EOF
}

// ExecOutput passes hvc0's output through, turning the tty's "\r\n" into
// "\n" and taking out the status line.
type ExecOutput struct {
	mu     sync.Mutex
	out    io.Writer
	line   []byte
	status int
	have   bool
}

// NewExecOutput writes the filtered output to out.
func NewExecOutput(out io.Writer) *ExecOutput { return &ExecOutput{out: out} }

// maxLine is how much of a line without newline is held back before it is
// passed on (it can then no longer be the status line).
const maxLine = 64 << 10

func (e *ExecOutput) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range p {
		e.line = append(e.line, b)
		if b == '\n' || len(e.line) >= maxLine {
			e.emit()
		}
	}
	return len(p), nil
}

func (e *ExecOutput) emit() {
	l := e.line
	nl := bytes.HasSuffix(l, []byte("\n"))
	if nl {
		l = bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
	}
	e.line = e.line[:0]
	if rest, ok := bytes.CutPrefix(l, []byte(runconfig.ExecStatusPrefix)); ok && nl {
		if v, err := strconv.Atoi(string(rest)); err == nil && v >= 0 && v <= 255 {
			e.status, e.have = v, true
			return
		}
	}
	e.out.Write(l)
	if nl {
		e.out.Write([]byte{'\n'})
	}
}

// Flush writes out a last line without newline.
func (e *ExecOutput) Flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.line) > 0 {
		e.emit()
	}
}

// Status is the exit status the guest reported, if it did.
func (e *ExecOutput) Status() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status, e.have
}
