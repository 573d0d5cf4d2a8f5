package lab

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAgentProtocol runs the agent and the host client over an in-memory
// connection, with real shell commands on the host standing in for L1.
func TestAgentProtocol(t *testing.T) {
	h, a := net.Pipe()
	go ServeAgent(a, 1500*time.Millisecond)
	c := newAgentClient(h)
	ctx := context.Background()
	m, err := c.waitHello(ctx)
	if err != nil || m.UptimeMS != 1500 {
		t.Fatalf("hello %+v %v", m, err)
	}
	big := strings.Repeat("x", 300<<10)
	for _, tc := range []struct {
		name, cmd        string
		timeout          time.Duration
		stdout, stderr   string
		exit             int
		timedOut, anyErr bool
	}{
		{"ok", "echo hello; echo oops >&2", 10 * time.Second, "hello\n", "oops\n", 0, false, false},
		{"exit status", "exit 7", 10 * time.Second, "", "", 7, false, true},
		{"binary output", `printf '\000\377\n'`, 10 * time.Second, "\x00\xff\n", "", 0, false, false},
		{"large output", "head -c 307200 /dev/zero | tr '\\0' x", 10 * time.Second, big, "", 0, false, false},
		{"timeout", "echo before; sleep 30", 300 * time.Millisecond, "before\n", "", -1, true, true},
		{"background child holds stdout", "sleep 30 & echo bg", 10 * time.Second, "bg\n", "", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r, err := c.run(ctx, tc.cmd, tc.timeout, nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Stdout) != tc.stdout || string(r.Stderr) != tc.stderr || r.ExitCode != tc.exit || r.TimedOut != tc.timedOut {
				t.Errorf("got stdout %.40q stderr %q exit %d timedOut %v", r.Stdout, r.Stderr, r.ExitCode, r.TimedOut)
			}
			if (r.Err() != nil) != tc.anyErr {
				t.Errorf("Err() = %v", r.Err())
			}
			if time.Since(start) > 8*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
	// Concurrent commands are matched to their own results.
	done := make(chan string, 2)
	for _, w := range []string{"one", "two"} {
		go func() {
			r, err := c.run(ctx, "sleep 0.2; echo "+w, 10*time.Second, nil)
			if err != nil {
				done <- err.Error()
				return
			}
			done <- w + "=" + strings.TrimSpace(string(r.Stdout))
		}()
	}
	got := map[string]bool{<-done: true, <-done: true}
	if !got["one=one"] || !got["two=two"] {
		t.Errorf("concurrent results %v", got)
	}
	// The host notices when the agent goes away.
	a.Close()
	if _, err := c.run(ctx, "true", time.Second, nil); err == nil {
		t.Error("run after the agent closed: no error")
	}
}
