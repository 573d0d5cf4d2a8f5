package interactive

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/runconfig"
)

func TestRequestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Request
		want string
		bad  bool
	}{
		{"neither", Request{}, "", false},
		{"shell", Request{Shell: true}, "ktstr.mode=shell", false},
		{"exec", Request{Exec: "exit 3", HasExec: true}, runconfig.ExecCmdline("exit 3"), false},
		{"both", Request{Shell: true, Exec: "true", HasExec: true}, "", true},
		{"empty exec", Request{HasExec: true}, "", true},
	} {
		got, err := tc.r.Cmdline()
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%s: Cmdline() = %q, %v; want %q, error %v", tc.name, got, err, tc.want, tc.bad)
		}
	}
}

func TestExecOutput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
		status int // -1: none reported
	}{
		// hvc0 is a tty: "\r\n" line ends, the status line in pieces.
		{"split status", []string{"hello\r\nwor", "ld\r\nKTSTR_EXEC_", "STATUS=3\r\n", "tail"}, "hello\nworld\ntail", 3},
		{"out of range and junk kept", []string{"KTSTR_EXEC_STATUS=999\nKTSTR_EXEC_STATUS=x\n"}, "KTSTR_EXEC_STATUS=999\nKTSTR_EXEC_STATUS=x\n", -1},
		{"no newline is no status", []string{"KTSTR_EXEC_STATUS=4"}, "KTSTR_EXEC_STATUS=4", -1},
		{"prefix mid-line", []string{"x KTSTR_EXEC_STATUS=5\n"}, "x KTSTR_EXEC_STATUS=5\n", -1},
		{"zero", []string{"KTSTR_EXEC_STATUS=0\r\n"}, "", 0},
		{"lone carriage return kept", []string{"a\rb\n"}, "a\rb\n", -1},
	} {
		var out bytes.Buffer
		e := NewExecOutput(&out)
		for _, c := range tc.chunks {
			if n, err := e.Write([]byte(c)); n != len(c) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tc.name, n, err)
			}
		}
		e.Flush()
		if out.String() != tc.want {
			t.Errorf("%s: output %q, want %q", tc.name, out.String(), tc.want)
		}
		code, ok := e.Status()
		if (tc.status >= 0) != ok || (ok && code != tc.status) {
			t.Errorf("%s: status %d %v, want %d", tc.name, code, ok, tc.status)
		}
	}
}

// A line longer than maxLine is passed on in pieces, nothing lost, and a
// status line after it is still found.
func TestExecOutputLongLine(t *testing.T) {
	var out bytes.Buffer
	e := NewExecOutput(&out)
	long := strings.Repeat("y", 3*maxLine+17) + "\r\n"
	e.Write([]byte(long + "KTSTR_EXEC_STATUS=9\n"))
	e.Flush()
	if want := strings.TrimSuffix(long, "\r\n") + "\n"; out.String() != want {
		t.Errorf("long line: got %d bytes, want %d", out.Len(), len(want))
	}
	if code, ok := e.Status(); !ok || code != 9 {
		t.Errorf("status %d %v, want 9", code, ok)
	}
}

func TestKeyboard(t *testing.T) {
	quit := 0
	k := NewKeyboard(strings.NewReader("ls\r\x01\x01x\x01xafter"), func() { quit++ })
	got, err := io.ReadAll(k)
	if err != nil || string(got) != "ls\r\x01x" || quit != 1 {
		t.Errorf("read %q err %v quit %d", got, err, quit)
	}
	// Without the escape the input passes through to EOF.
	k = NewKeyboard(strings.NewReader("plain\x01a"), func() { quit++ })
	got, _ = io.ReadAll(k)
	if quit != 1 || !strings.HasPrefix(string(got), "plain") {
		t.Errorf("read %q quit %d", got, quit)
	}
}
