package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// FindQEMU returns the qemu-system-x86_64 to use: $KTSTR_QEMU when set,
// else the one on $PATH. The error says how to get one.
func FindQEMU() (string, error) {
	if q := os.Getenv("KTSTR_QEMU"); q != "" {
		if _, err := os.Stat(q); err != nil {
			return "", fmt.Errorf("KTSTR_QEMU=%s: %w", q, err)
		}
		return q, nil
	}
	q, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", fmt.Errorf("qemu-system-x86_64 not found: install it (apt-get install qemu-system-x86) or set KTSTR_QEMU")
	}
	return q, nil
}

// Missing returns a sentence naming what the lab lacks to boot a kernel
// (QEMU, or the kernel given by $KTSTR_KERNEL), or "" when nothing is
// missing. Tests skip with this sentence.
func Missing() string {
	if _, err := FindQEMU(); err != nil {
		return err.Error()
	}
	k := os.Getenv("KTSTR_KERNEL")
	if k == "" {
		return "KTSTR_KERNEL is not set: point it at a bzImage (make exports the ../shared fixture)"
	}
	if _, err := os.Stat(k); err != nil {
		return fmt.Sprintf("KTSTR_KERNEL=%s: %v", k, err)
	}
	return ""
}

// process is one QEMU run: a child with a hard deadline, its serial console
// on stdout, its stderr kept for diagnostics, and optionally a unix socket
// the guest's virtio-serial port connects to.
type process struct {
	qemu    string
	args    []string
	timeout time.Duration
	console io.Writer // live copy of the console (may be nil)

	cmd      *exec.Cmd
	conBuf   lockedBuffer
	errBuf   lockedBuffer
	start    time.Time
	done     chan struct{}
	waitErr  error
	timedOut bool
	cancel   context.CancelFunc
	ctx      context.Context
	outDone  chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte{}, l.b.Bytes()...)
}

// start launches QEMU. The run is killed when ctx ends or the timeout passes.
func (p *process) startProc(ctx context.Context) error {
	p.ctx, p.cancel = context.WithTimeout(ctx, p.timeout)
	p.cmd = exec.Command(p.qemu, p.args...)
	p.cmd.Stdin = nil
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		p.cancel()
		return err
	}
	p.cmd.Stderr = &p.errBuf
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.cancel()
		return fmt.Errorf("start %s: %w", p.qemu, err)
	}
	p.outDone = make(chan struct{})
	go func() {
		defer close(p.outDone)
		var w io.Writer = &p.conBuf
		if p.console != nil {
			w = io.MultiWriter(&p.conBuf, p.console)
		}
		io.Copy(w, stdout)
	}()
	p.done = make(chan struct{})
	go func() {
		select {
		case <-p.ctx.Done():
			if errors.Is(p.ctx.Err(), context.DeadlineExceeded) {
				p.timedOut = true
			}
			// Kill the whole process group: QEMU and anything it spawned.
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

// wait blocks until QEMU has exited and returns its exit code (-1 when it
// was killed by a signal) and the wall time since start.
func (p *process) wait() (int, time.Duration) {
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
