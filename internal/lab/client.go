package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// RunResult is one command's outcome inside L1.
type RunResult struct {
	Stdout, Stderr []byte
	// ExitCode is the command's exit status; -1 when it was killed.
	ExitCode int
	// TimedOut is true when the command's timeout killed it.
	TimedOut bool
	// Wall is the command's run time as the agent measured it.
	Wall time.Duration
}

// Err returns nil for a command that exited 0 and a one-line error with
// the tail of its output otherwise.
func (r *RunResult) Err() error {
	switch {
	case r.TimedOut:
		return fmt.Errorf("command killed after its %v timeout; output tail: %s", r.Wall.Round(time.Second), tail(append(append([]byte{}, r.Stdout...), r.Stderr...), 400))
	case r.ExitCode != 0:
		return fmt.Errorf("command exited %d: %s", r.ExitCode, tail(append(append([]byte{}, r.Stdout...), r.Stderr...), 400))
	}
	return nil
}

// ErrAgentLost means the L1 agent stopped answering: L1 crashed, hung or
// its QEMU was killed. The Nested lab is unusable after it.
var ErrAgentLost = errors.New("nested lab: the L1 agent stopped answering")

// agentClient is the host end of the protocol.
type agentClient struct {
	w       io.Writer
	wmu     sync.Mutex
	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*pendingCmd
	lost    chan struct{} // closed when the reader ends
	lostErr error
	hello   chan agentMessage
}

type pendingCmd struct {
	res  RunResult
	live io.Writer
	done chan struct{}
}

func newAgentClient(rw io.ReadWriter) *agentClient {
	c := &agentClient{w: rw, pending: map[uint64]*pendingCmd{}, lost: make(chan struct{}), hello: make(chan agentMessage, 1)}
	go c.read(rw)
	return c
}

func (c *agentClient) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxAgentLine)
	for sc.Scan() {
		var m agentMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not ours (should not happen on a dedicated port)
		}
		if m.Hello != "" {
			select {
			case c.hello <- m:
			default:
			}
			continue
		}
		c.mu.Lock()
		p := c.pending[m.ID]
		c.mu.Unlock()
		if p == nil {
			continue
		}
		switch {
		case m.Done:
			p.res.ExitCode, p.res.TimedOut = m.Exit, m.TimedOut
			p.res.Wall = time.Duration(m.WallMS) * time.Millisecond
			if m.Err != "" {
				p.res.Stderr = append(p.res.Stderr, []byte("ktstr-lab-agent: "+m.Err+"\n")...)
			}
			c.mu.Lock()
			delete(c.pending, m.ID)
			c.mu.Unlock()
			close(p.done)
		case m.Fd == 1:
			p.res.Stdout = append(p.res.Stdout, m.Data...)
			if p.live != nil {
				p.live.Write(m.Data)
			}
		case m.Fd == 2:
			p.res.Stderr = append(p.res.Stderr, m.Data...)
			if p.live != nil {
				p.live.Write(m.Data)
			}
		}
	}
	c.lostErr = sc.Err()
	close(c.lost)
}

// waitHello waits for the agent's greeting.
func (c *agentClient) waitHello(ctx context.Context) (agentMessage, error) {
	select {
	case m := <-c.hello:
		if m.Hello != AgentHello {
			return m, fmt.Errorf("nested lab: agent speaks %q, want %q: rebuild it", m.Hello, AgentHello)
		}
		return m, nil
	case <-c.lost:
		return agentMessage{}, ErrAgentLost
	case <-ctx.Done():
		return agentMessage{}, ctx.Err()
	}
}

// agentGrace is how long past a command's own timeout the host waits for
// the agent's answer before declaring the agent lost.
const agentGrace = 30 * time.Second

// run sends cmd and waits for its result. live, when set, gets the output
// as it arrives.
func (c *agentClient) run(ctx context.Context, cmd string, timeout time.Duration, live io.Writer) (*RunResult, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	p := &pendingCmd{live: live, done: make(chan struct{})}
	c.pending[id] = p
	c.mu.Unlock()
	b, _ := json.Marshal(agentRequest{ID: id, Cmd: cmd, TimeoutMS: timeout.Milliseconds()})
	c.wmu.Lock()
	_, err := c.w.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: sending the command: %v", ErrAgentLost, err)
	}
	t := time.NewTimer(timeout + agentGrace)
	defer t.Stop()
	select {
	case <-p.done:
		r := p.res
		return &r, nil
	case <-c.lost:
		return nil, ErrAgentLost
	case <-t.C:
		return nil, fmt.Errorf("%w: no answer %v after the command's %v timeout", ErrAgentLost, agentGrace, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
