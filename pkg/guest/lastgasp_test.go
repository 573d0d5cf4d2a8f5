package guest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func decodeAll(t *testing.T, b []byte) []wire.Message {
	t.Helper()
	var out []wire.Message
	d := wire.NewDecoder(bytes.NewReader(b))
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		m, err := wire.Unmarshal(f.Type, f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

// timedWriter records when each write happened.
type timedWriter struct {
	bytes.Buffer
	at []time.Time
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.at = append(w.at, time.Now())
	return w.Buffer.Write(p)
}

// TestLastGaspReport feeds lastGasp a crash report in pieces, the way the
// runtime prints it, and checks that both frames go out as soon as the
// first line is in (before the writer finishes), then the console line.
func TestLastGaspReport(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	go func() {
		for _, p := range []string{"panic: ", "boom", "\n\ngoroutine 7 [running]:\n", "main.f()\n\t/x.go:3 +0x1\n"} {
			w.Write([]byte(p))
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // the runtime still printing
		w.Close()
	}()
	var port timedWriter
	var con bytes.Buffer
	if rc := lastGasp(r, &port, &con); rc != 0 {
		t.Fatalf("rc %d", rc)
	}
	if len(port.at) != 2 {
		t.Fatalf("%d port writes, want 2 (one per frame)", len(port.at))
	}
	if el := port.at[1].Sub(start); el > 1500*time.Millisecond {
		t.Errorf("guest_exit went out %v after the crash: it must not wait for the whole report", el)
	}
	if !strings.HasPrefix(con.String(), "ktstr-init: FATAL: PID 1 is dying (Go runtime: panic: boom); guest_exit 8 sent") {
		t.Fatalf("console %q", con.String())
	}
	ms := decodeAll(t, port.Bytes())
	if len(ms) != 2 {
		t.Fatalf("%d frames, want log + guest_exit", len(ms))
	}
	if l, ok := ms[0].(wire.Log); !ok || !strings.Contains(l.Text, "Go runtime: panic: boom") {
		t.Fatalf("log frame %#v", ms[0])
	}
	if g, ok := ms[1].(wire.GuestExit); !ok || g.Code != ExitInitCrashed {
		t.Fatalf("exit frame %#v", ms[1])
	}
}

func TestLastGaspNothingToSay(t *testing.T) {
	r, w, _ := os.Pipe()
	w.Close()
	var port, con bytes.Buffer
	if rc := lastGasp(r, &port, &con); rc != 0 || port.Len() != 0 || con.Len() != 0 {
		t.Fatalf("rc %d, port %d bytes, console %q", rc, port.Len(), con.String())
	}
}

const lastGaspRole = "KTSTR_TEST_LASTGASP_ROLE"

// TestLastGaspHelper is the helper process of TestLastGaspRealCrash (it
// does nothing in a normal test run): role "child" is the watcher; roles
// "goroutine" and "fatal" play PID 1, start the watcher on a port file
// and then crash the Go runtime for real.
func TestLastGaspHelper(t *testing.T) {
	role := os.Getenv(lastGaspRole)
	switch role {
	case "":
		return
	case "child":
		os.Exit(RunLastGasp())
	}
	port, err := os.OpenFile(os.Getenv("KTSTR_TEST_LASTGASP_PORT"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{console: os.Stderr}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLastGaspHelper$")
	cmd.Env = append(os.Environ(), lastGaspRole+"=child")
	startLastGaspCmd(e, port, cmd)
	time.Sleep(200 * time.Millisecond) // let the watcher block on the pipe
	switch role {
	case "goroutine": // an unrecovered panic in a goroutine of PID 1
		go func() { panic("boom in a goroutine") }()
	case "fatal": // a fatal runtime error: no recover can catch it
		debug.SetMaxStack(64 << 10)
		var f func(int) int
		f = func(n int) int { var pad [256]byte; return f(n+1) + int(pad[n%256]) }
		f(0)
	}
	time.Sleep(30 * time.Second)
}

// TestLastGaspRealCrash crashes a real Go runtime (a panic in a goroutine,
// a fatal stack overflow) in a process set up like PID 1, and checks that
// the watcher put the runtime's report and guest_exit 8 on the port.
func TestLastGaspRealCrash(t *testing.T) {
	for _, tc := range []struct{ role, want, console string }{
		{"goroutine", "panic: boom in a goroutine", "panic: boom in a goroutine"},
		// The runtime writes a throw's "fatal error: MSG" line to
		// stderr only; the crash output starts with the stack.
		{"fatal", "Go runtime: runtime stack:", "fatal error, its message is on the console just above"},
	} {
		t.Run(tc.role, func(t *testing.T) {
			portPath := filepath.Join(t.TempDir(), "port")
			if err := os.WriteFile(portPath, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestLastGaspHelper$", "-test.v")
			cmd.Env = append(os.Environ(), lastGaspRole+"="+tc.role, "KTSTR_TEST_LASTGASP_PORT="+portPath)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err == nil {
				t.Fatalf("the crashing process exited 0:\n%s", out.String())
			}
			var ms []wire.Message
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				b, _ := os.ReadFile(portPath)
				if ms = decodeAll(t, b); len(ms) == 2 {
					break
				}
			}
			if len(ms) != 2 {
				t.Fatalf("%d frames on the port, want log + guest_exit; process output:\n%s", len(ms), out.String())
			}
			if l, ok := ms[0].(wire.Log); !ok || !strings.Contains(l.Text, tc.want) {
				t.Fatalf("log frame %#v lacks %q", ms[0], tc.want)
			}
			if g, ok := ms[1].(wire.GuestExit); !ok || g.Code != ExitInitCrashed {
				t.Fatalf("exit frame %#v", ms[1])
			}
			if tc.role == "fatal" && !strings.Contains(out.String(), "fatal error: stack overflow") {
				t.Errorf("the runtime's own message is missing from stderr:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "ktstr-init: FATAL: PID 1 is dying (Go runtime: "+tc.console) {
				t.Errorf("no console line; output:\n%s", out.String())
			}
		})
	}
}
