package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Result is a finished run.
type Result struct {
	Blob     string   // the initramfs ktstr-mkinitramfs printed
	Statuses []Status // every tool, in order
	Exit     int      // Combine's code
	Why      string   // Combine's line
}

// Run builds the initramfs, then runs the pipeline with the decoder's
// output on stdout and every tool's diagnostics (and, unless
// Spec.Console is set, the guest console) on stderr. Signals in sigs are
// forwarded to the pipeline's first stage (ktstr-hostlock, which passes
// them to ktstr-boot: it ends the run with a vm_exit frame and the rest
// of the pipeline judges what came); ctx's end terminates every stage. The error is for what
// prevented the run from starting at all.
func Run(ctx context.Context, s *Spec, t Tools, r Reservation, stdout, stderr io.Writer, sigs <-chan os.Signal) (*Result, error) {
	res := &Result{}
	mk := s.MkinitramfsArgs(t)
	var out bytes.Buffer
	c := exec.CommandContext(ctx, mk[0], mk[1:]...)
	c.Stdout, c.Stderr = &out, stderr
	err := c.Run()
	st := Status{Tool: Mkinitramfs, Ran: true, Code: exitCode(c, err)}
	res.Statuses = append(res.Statuses, st)
	if err != nil {
		if st.Code == 0 {
			st.Code, res.Statuses[0].Code = -1, -1
		}
		res.Exit, res.Why = ExitTool, fmt.Sprintf("%s failed (%v): no initramfs", Mkinitramfs, err)
		return res, nil
	}
	res.Blob = strings.TrimSpace(out.String())
	if res.Blob == "" || strings.Contains(res.Blob, "\n") {
		res.Exit, res.Why = ExitTool, fmt.Sprintf("%s printed %q, not one blob path", Mkinitramfs, res.Blob)
		return res, nil
	}

	stages := s.Stages(t, res.Blob, r)
	if _, ok := stderr.(*os.File); !ok {
		// Every stage writes it from a goroutine of its own (os/exec
		// copies a non-file writer), so any other writer is serialised.
		stderr = &lockedWriter{w: stderr}
	}
	cmds := make([]*exec.Cmd, len(stages))
	var closeAfterStart []io.Closer
	var prev io.Reader // stdin of the next stage
	for i, a := range stages {
		cmd := exec.Command(a[0], a[1:]...)
		cmd.Stderr = stderr
		if prev != nil {
			cmd.Stdin = prev
		}
		if i == len(stages)-1 {
			cmd.Stdout = stdout
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("pipe: %w", err)
			}
			cmd.Stdout = w
			closeAfterStart = append(closeAfterStart, w, r)
			prev = r
		}
		cmds[i] = cmd
	}
	started := make([]bool, len(cmds))
	for i, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "ktstr-run: start %s: %v\n", stages[i][0], err)
			continue
		}
		started[i] = true
	}
	// The parent keeps no pipe end: each stage sees EOF when its writer
	// exits, and a writer sees EPIPE when its reader does.
	for _, c := range closeAfterStart {
		c.Close()
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				signalAll(cmds, started, syscall.SIGTERM)
				return
			case sig, ok := <-sigs:
				if !ok {
					sigs = nil
					continue
				}
				// Only the source: ktstr-boot ends the run its own way
				// (a vm_exit frame), and the rest of the pipeline drains
				// the stream and judges it. (A terminal's Ctrl-C reaches
				// the whole process group by itself.)
				if started[0] {
					cmds[0].Process.Signal(sig)
				}
			}
		}
	}()
	for i, cmd := range cmds {
		name := toolOf(stages[i][0], t)
		if !started[i] {
			res.Statuses = append(res.Statuses, Status{Tool: name})
			continue
		}
		err := cmd.Wait()
		res.Statuses = append(res.Statuses, Status{Tool: name, Ran: true, Code: exitCode(cmd, err)})
	}
	close(done)
	res.Exit, res.Why = Combine(res.Statuses)
	return res, nil
}

func signalAll(cmds []*exec.Cmd, started []bool, sig os.Signal) {
	for i, c := range cmds {
		if started[i] && c.Process != nil {
			c.Process.Signal(sig)
		}
	}
}

// toolOf names a stage by its command; the ktstr-hostlock stage by the
// ktstr-boot it runs, whose exit status it passes through.
func toolOf(path string, t Tools) string {
	if path == t[Hostlock] {
		return Boot
	}
	for name, p := range t {
		if p == path {
			return name
		}
	}
	return path
}

// exitCode is the command's exit status, -1 when a signal killed it.
func exitCode(c *exec.Cmd, err error) int {
	if c.ProcessState == nil {
		if err != nil {
			return -1
		}
		return 0
	}
	return c.ProcessState.ExitCode()
}
