package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ServeAgent is the L1 agent's loop: it greets the host on rw, then runs
// each requested command with /bin/sh -c, streams its output back and
// reports its exit status, until rw reaches EOF. Commands run concurrently
// when the host sends several; each runs in its own process group, which is
// killed when its timeout passes.
func ServeAgent(rw io.ReadWriter, uptime time.Duration) error {
	var wmu sync.Mutex
	enc := json.NewEncoder(rw)
	send := func(m agentMessage) {
		wmu.Lock()
		defer wmu.Unlock()
		enc.Encode(&m)
	}
	send(agentMessage{Hello: AgentHello, UptimeMS: uptime.Milliseconds()})
	sc := bufio.NewScanner(rw)
	sc.Buffer(make([]byte, 64<<10), maxAgentLine)
	var wg sync.WaitGroup
	for sc.Scan() {
		var req agentRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil || req.ID == 0 {
			fmt.Fprintf(os.Stderr, "ktstr-lab-agent: bad request %q: %v\n", sc.Bytes(), err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runAgentCommand(req, send)
		}()
	}
	wg.Wait()
	return sc.Err()
}

type chunkWriter struct {
	id   uint64
	fd   int
	send func(agentMessage)
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += 64 << 10 {
		end := min(off+64<<10, len(p))
		c.send(agentMessage{ID: c.id, Fd: c.fd, Data: append([]byte{}, p[off:end]...)})
	}
	return len(p), nil
}

func runAgentCommand(req agentRequest, send func(agentMessage)) {
	start := time.Now()
	cmd := exec.Command("/bin/sh", "-c", req.Cmd)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = &chunkWriter{id: req.ID, fd: 1, send: send}
	cmd.Stderr = &chunkWriter{id: req.ID, fd: 2, send: send}
	// Output copying stops this long after the command exits, even if a
	// background child still holds its stdout.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		send(agentMessage{ID: req.ID, Done: true, Exit: -1, Err: err.Error()})
		return
	}
	timedOut := false
	var timer *time.Timer
	if req.TimeoutMS > 0 {
		timer = time.AfterFunc(time.Duration(req.TimeoutMS)*time.Millisecond, func() {
			timedOut = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		})
	}
	cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	// Whatever the command left behind in its group goes with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	send(agentMessage{ID: req.ID, Done: true, Exit: code, TimedOut: timedOut, WallMS: time.Since(start).Milliseconds()})
}
