package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cpupin"
)

// Process is one QEMU run: a child in its own process group with a hard
// deadline, its serial console on stdout, its stderr kept for diagnostics.
// Set QEMU, Args, Timeout and optionally Console, then Start and Wait.
type Process struct {
	QEMU    string
	Args    []string
	Timeout time.Duration
	Console io.Writer // live copy of the console (may be nil)
	// Keep bounds the console and stderr kept in memory to about their
	// last Keep bytes (0: keep everything).
	Keep int
	// CPUs, when set, is the host CPU set QEMU and all its threads run on
	// (KTSTR_CPUS from ktstr-hostlock).
	CPUs []int

	cmd      *exec.Cmd
	conBuf   lockedBuffer
	errBuf   lockedBuffer
	start    time.Time
	done     chan struct{}
	waitErr  error
	timedOut atomic.Bool
	cancel   context.CancelFunc
	ctx      context.Context
	outDone  chan struct{}
}

// lockedBuffer keeps what is written to it, or with max > 0 only its
// last max to 2*max bytes (bounded memory for long runs).
type lockedBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.b.Write(p)
	if l.max > 0 && l.b.Len() > 2*l.max {
		keep := append([]byte(nil), l.b.Bytes()[l.b.Len()-l.max:]...)
		l.b.Reset()
		l.b.Write(keep)
	}
	return n, err
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte{}, l.b.Bytes()...)
}

// Start launches QEMU. The run is killed when ctx ends or the timeout passes.
func (p *Process) Start(ctx context.Context) error {
	p.ctx, p.cancel = context.WithTimeout(ctx, p.Timeout)
	p.conBuf.max, p.errBuf.max = p.Keep, p.Keep
	p.cmd = exec.Command(p.QEMU, p.Args...)
	p.cmd.Stdin = nil
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		p.cancel()
		return err
	}
	p.cmd.Stderr = &p.errBuf
	p.start = time.Now()
	if err := startPinned(p.cmd, p.CPUs); err != nil {
		p.cancel()
		return fmt.Errorf("start %s: %w", p.QEMU, err)
	}
	p.outDone = make(chan struct{})
	go func() {
		defer close(p.outDone)
		var w io.Writer = &p.conBuf
		if p.Console != nil {
			w = io.MultiWriter(&p.conBuf, p.Console)
		}
		io.Copy(w, stdout)
	}()
	p.done = make(chan struct{})
	go func() {
		select {
		case <-p.ctx.Done():
			if errors.Is(p.ctx.Err(), context.DeadlineExceeded) {
				p.timedOut.Store(true)
			}
			// Kill the whole Process group: QEMU and anything it spawned.
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		case <-p.done:
		}
	}()
	go func() {
		<-p.outDone
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// Wait blocks until QEMU has exited and returns its exit code (-1 when it
// was killed by a signal) and the wall time since start.
func (p *Process) Wait() (int, time.Duration) {
	<-p.done
	wall := time.Since(p.start)
	p.cancel()
	code := -1
	if p.cmd.ProcessState != nil {
		code = p.cmd.ProcessState.ExitCode()
	}
	return code, wall
}

// streamSink accepts the single connection QEMU's socket chardev makes and
// copies everything it receives to w.
type streamSink struct {
	ln    net.Listener
	path  string
	done  chan struct{}
	err   error
	mu    sync.Mutex
	conn  net.Conn
	first time.Time // arrival of the first stream byte
}

func (s *streamSink) firstByte() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

func newStreamSink(dir string, w io.Writer) (*streamSink, error) {
	p := filepath.Join(dir, "stream.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("listen for the guest stream: %w", err)
	}
	s := &streamSink{ln: ln, path: p, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		c, err := ln.Accept()
		if err != nil {
			return // listener closed before QEMU connected
		}
		s.mu.Lock()
		s.conn = c
		s.mu.Unlock()
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				s.mu.Lock()
				if s.first.IsZero() {
					s.first = time.Now()
				}
				s.mu.Unlock()
				if _, werr := w.Write(buf[:k]); werr != nil {
					s.err = werr
					break
				}
			}
			if err != nil {
				if err != io.EOF {
					s.err = err
				}
				break
			}
		}
		c.Close()
	}()
	return s, nil
}

// close stops accepting and waits for the copy to finish (QEMU's exit
// closes the connection).
func (s *streamSink) close() error {
	s.ln.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
		<-s.done
	}
	return s.err
}

// startPinned starts cmd with its CPU affinity set to cpus (none: this
// process's): the child inherits the mask of the thread that forks it, so
// that thread's mask is set for the fork and restored after; QEMU's
// threads inherit it from there.
func startPinned(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := cpupin.Affinity()
	if err != nil {
		return err
	}
	if err := cpupin.Thread(cpus); err != nil {
		return err
	}
	err = cmd.Start()
	if rerr := cpupin.Thread(old); rerr != nil && err == nil {
		// This thread stays locked (and dies with the goroutine's end)
		// rather than run other goroutines on the reserved CPUs.
		return fmt.Errorf("restore CPU affinity: %w", rerr)
	}
	return err
}

// Done is closed when QEMU has exited and its console is drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop kills QEMU's process group now (Wait still reports how it ended).
func (p *Process) Stop() { p.cancel() }

// PID is QEMU's process id (after Start).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Started is when QEMU was started.
func (p *Process) Started() time.Time { return p.start }

// ConsoleBytes returns the console captured so far.
func (p *Process) ConsoleBytes() []byte { return p.conBuf.Bytes() }

// StderrBytes returns QEMU's own error output captured so far.
func (p *Process) StderrBytes() []byte { return p.errBuf.Bytes() }

// TimedOut reports whether the hard timeout killed QEMU (valid after Wait).
func (p *Process) TimedOut() bool { return p.timedOut.Load() }
