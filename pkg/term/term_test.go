package term

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		chunks []string
		want   string
		quit   bool
	}{
		{[]string{"ls\r"}, "ls\r", false},
		{[]string{"ab\x01xcd"}, "ab", true},
		{[]string{"ab\x01Xcd"}, "ab", true},
		{[]string{"a\x01", "x"}, "a", true},
		{[]string{"a\x01\x01b"}, "a\x01b", false},
		{[]string{"a\x01qb"}, "ab", false},
		{[]string{"\x01", "\x01", "\x01", "x"}, "\x01", true},
	}
	for _, tc := range tests {
		var e Escape
		var got []byte
		quit := false
		for _, c := range tc.chunks {
			out, q := e.Filter([]byte(c))
			got = append(got, out...)
			if q {
				quit = true
				break
			}
		}
		if string(got) != tc.want || quit != tc.quit {
			t.Errorf("%q: got %q quit=%v, want %q quit=%v", tc.chunks, got, quit, tc.want, tc.quit)
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add([]byte("hello\x01x"), 3)
	f.Add([]byte("\x01\x01\x01"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		if split < 0 || split > len(in) {
			split = len(in)
		}
		var a, b Escape
		whole, qw := a.Filter(in)
		p1, q1 := b.Filter(in[:split])
		got := p1
		q := q1
		if !q1 {
			p2, q2 := b.Filter(in[split:])
			got = append(got, p2...)
			q = q2
		}
		if !bytes.Equal(whole, got) || qw != q {
			t.Fatalf("split at %d changes the result: %q/%v vs %q/%v", split, whole, qw, got, q)
		}
		if len(whole) > len(in) {
			t.Fatal("output longer than input")
		}
	})
}

// openPTY returns a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("SKIP: no /dev/ptmx for a pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func TestRawRestore(t *testing.T) {
	_, s := openPTY(t)
	fd := int(s.Fd())
	if !IsTerminal(fd) {
		t.Fatal("pty slave is not a terminal")
	}
	before, _ := unix.IoctlGetTermios(fd, unix.TCGETS)
	r, err := makeRaw(fd)
	if err != nil {
		t.Fatal(err)
	}
	during, _ := unix.IoctlGetTermios(fd, unix.TCGETS)
	if during.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("raw mode keeps lflag %#x", during.Lflag)
	}
	for i := 0; i < 2; i++ {
		if err := r.Restore(); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := unix.IoctlGetTermios(fd, unix.TCGETS)
	if *after != *before {
		t.Errorf("terminal not restored: %+v vs %+v", after, before)
	}
	f, _ := os.CreateTemp(t.TempDir(), "x")
	if _, err := makeRaw(int(f.Fd())); err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Errorf("makeRaw on a file: %v", err)
	}
}

// TestRestoreOnExitPaths runs a child that puts a pty in raw mode and then
// leaves by a signal or a panic; the terminal must be back to cooked.
func TestRestoreOnExitPaths(t *testing.T) {
	if os.Getenv("KTSTR_TERM_CHILD") != "" {
		return
	}
	for _, how := range []string{"sigterm", "sigint", "sighup", "panic", "return", "goroutine-panic", "sigkill"} {
		t.Run(how, func(t *testing.T) {
			_, s := openPTY(t)
			before, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
			cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperChild$")
			cmd.Env = append(os.Environ(), "KTSTR_TERM_CHILD="+how)
			cmd.Stdin = s
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				cur, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
				if cur.Lflag&unix.ICANON == 0 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("child never went raw: %s", out.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			switch how {
			case "sigterm":
				cmd.Process.Signal(unix.SIGTERM)
			case "sigint":
				cmd.Process.Signal(unix.SIGINT)
			case "sighup":
				cmd.Process.Signal(unix.SIGHUP)
			case "sigkill":
				cmd.Process.Kill()
			}
			cmd.Wait()
			// After an uncatchable end the guard (a re-executed test binary,
			// woken by its pipe's EOF) restores; give it up to 10 s. It
			// took longer than the 2 s allowed before once, in a CI-style
			// run on the loaded 2-core machine.
			for i := 0; i < 1000; i++ {
				if cur, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS); *cur == *before {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			after, _ := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
			if *after != *before {
				t.Errorf("%s: terminal left raw (lflag %#x, was %#x); child said: %s", how, after.Lflag, before.Lflag, out.String())
			}
		})
	}
}

// TestHelperChild is the child side of TestRestoreOnExitPaths.
func TestHelperChild(t *testing.T) {
	how := os.Getenv("KTSTR_TERM_CHILD")
	if how == "" {
		t.Skip("helper process for TestRestoreOnExitPaths only")
	}
	err := Session(0, func(stop <-chan struct{}) error {
		switch how {
		case "panic":
			time.Sleep(100 * time.Millisecond)
			panic("test panic")
		case "goroutine-panic":
			// Panic only after the parent has seen the terminal go raw.
			go func() { time.Sleep(100 * time.Millisecond); panic("test panic in another goroutine") }()
			time.Sleep(5 * time.Second)
		case "return":
			time.Sleep(100 * time.Millisecond)
			return nil
		}
		select {
		case <-stop:
		case <-time.After(10 * time.Second):
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	os.Exit(0)
}

func TestMain(m *testing.M) {
	MaybeGuard()
	os.Exit(m.Run())
}
