package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/term"
	"github.com/ktstr-go/ktstr/pkg/vmm"
	"github.com/urfave/cli/v2"
)

// --shell and --exec talk to the guest's hvc0. The guest's init is asked
// through the command line (man/ktstr-boot.1, GUEST CONTRACT):
//
//	ktstr.mode=shell      run an interactive shell on /dev/hvc0
//	ktstr.exec=BASE64     run /bin/sh -c "$(decoded)" with its output on
//	                      /dev/hvc0, then print KTSTR_EXEC_STATUS=<code>
//	                      on a line of its own (or send a guest-exit frame)
//	                      and power off
//
// In both modes the frame stream is not written to stdout (the terminal,
// or the command's output, is).

// ExecStatusPrefix starts the line a guest prints with the command's exit
// status.
const ExecStatusPrefix = "KTSTR_EXEC_STATUS="

// ExitNoStatus is the exit code when the guest ended without reporting the
// --exec command's status.
const ExitNoStatus = 126

// interactiveCmdline returns what --shell or --exec add to the kernel
// command line ("" for neither).
func interactiveCmdline(c *cli.Context) (string, error) {
	shell, exec := c.Bool("shell"), c.IsSet("exec")
	switch {
	case shell && exec:
		return "", cmdutil.UsageError("--shell and --exec exclude each other")
	case shell:
		return "ktstr.mode=shell", nil
	case exec:
		if c.String("exec") == "" {
			return "", cmdutil.UsageError("--exec needs a command")
		}
		return "ktstr.exec=" + base64.StdEncoding.EncodeToString([]byte(c.String("exec"))), nil
	}
	return "", nil
}

// runInteractive runs cfg in --shell or --exec mode; handled is false
// when neither was asked for.
func runInteractive(c *cli.Context, cfg vmm.Config) (handled bool, err error) {
	switch {
	case c.Bool("shell"):
		return true, runShell(cfg)
	case c.IsSet("exec"):
		return true, runExec(cfg)
	}
	return false, nil
}

func runShell(cfg vmm.Config) error {
	if !term.IsTerminal(0) {
		return cmdutil.UsageError("--shell needs a terminal on standard input (use --exec CMD from scripts)")
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	quit := func() { stopOnce.Do(func() { close(stop) }) }
	cfg.Stream = io.Discard
	cfg.HVC = os.Stdout
	cfg.ConsoleInput = &keyboard{r: os.Stdin, quit: quit}
	cfg.Stop = stop
	fmt.Fprintf(os.Stderr, "ktstr-boot: shell on the guest's hvc0; Ctrl-A X quits, Ctrl-A Ctrl-A sends Ctrl-A\n")
	var res vmm.Result
	err := term.Session(0, func(sig <-chan struct{}) error {
		go func() {
			<-sig
			quit()
		}()
		var err error
		res, err = vmm.Run(cfg)
		return err
	})
	if err != nil {
		return cmdutil.Exit(vmm.ExitVMMError, err)
	}
	select {
	case <-stop:
		if res.Reason == vmm.ReasonStopped {
			fmt.Fprintf(os.Stderr, "\nktstr-boot: connection to the VM closed\n")
			return nil
		}
	default:
	}
	if res.ExitCode == 0 {
		return nil
	}
	return cmdutil.Exitf(res.ExitCode, "%s", res.Summary())
}

// keyboard filters the terminal's bytes through the Ctrl-A escape.
type keyboard struct {
	r    io.Reader
	esc  term.Escape
	quit func()
	done bool
}

func (k *keyboard) Read(p []byte) (int, error) {
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

func runExec(cfg vmm.Config) error {
	w := &execOutput{out: os.Stdout}
	cfg.Stream = io.Discard
	cfg.HVC = w
	res, err := vmm.Run(cfg)
	if err != nil {
		return cmdutil.Exit(vmm.ExitVMMError, err)
	}
	w.Flush()
	if code, ok := w.Status(); ok {
		if code == 0 {
			return nil
		}
		return cmdutil.Exit(code, fmt.Errorf("the command exited with status %d", code))
	}
	if res.GuestCode != nil {
		if res.ExitCode == 0 {
			return nil
		}
		return cmdutil.Exit(res.ExitCode, fmt.Errorf("the command exited with status %d", res.ExitCode))
	}
	if res.ExitCode != 0 && res.Reason != vmm.ReasonPoweroff {
		return cmdutil.Exitf(res.ExitCode, "%s", res.Summary())
	}
	return cmdutil.Exitf(ExitNoStatus, "the guest ended (%s) without reporting the command's status: does its init implement ktstr.exec? (see ktstr-boot(1), GUEST CONTRACT)", res.Reason)
}

// execOutput passes hvc0's output through, turning the tty's "\r\n" into
// "\n" and taking out the status line.
type execOutput struct {
	mu     sync.Mutex
	out    io.Writer
	line   []byte
	status int
	have   bool
}

func (e *execOutput) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range p {
		e.line = append(e.line, b)
		if b == '\n' {
			e.emit()
		}
	}
	if len(e.line) > 64<<10 { // a long line without newline: pass it on
		e.emit()
	}
	return len(p), nil
}

func (e *execOutput) emit() {
	l := bytes.TrimSuffix(bytes.TrimSuffix(e.line, []byte("\n")), []byte("\r"))
	nl := bytes.HasSuffix(e.line, []byte("\n"))
	e.line = e.line[:0]
	if rest, ok := bytes.CutPrefix(l, []byte(ExecStatusPrefix)); ok && nl {
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
func (e *execOutput) Flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.line) > 0 {
		e.emit()
	}
}

// Status is the exit status the guest reported, if it did.
func (e *execOutput) Status() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status, e.have
}
