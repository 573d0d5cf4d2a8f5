package runwatch

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// naiveTail is the reference: everything written, last max bytes.
func naiveTail(writes [][]byte, max int) []byte {
	var all []byte
	for _, w := range writes {
		all = append(all, w...)
	}
	if len(all) > max {
		all = all[len(all)-max:]
	}
	return all
}

func TestConsoleTailRing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		writes []string
	}{
		{"empty", 8, nil},
		{"fits", 8, []string{"abc", "de"}},
		{"exactly full", 5, []string{"abc", "de"}},
		{"wraps", 5, []string{"abc", "defg", "h"}},
		{"one huge write", 4, []string{"ab", "0123456789"}},
		{"huge then small", 4, []string{"0123456789", "xy"}},
		{"many small", 3, strings.Split("abcdefghijklmnop", "")},
		{"write equal to max", 4, []string{"z", "wxyz", "q"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := NewConsoleTail(tc.max)
			var ws [][]byte
			for _, w := range tc.writes {
				n, err := ct.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
				ws = append(ws, []byte(w))
			}
			if got, want := ct.Bytes(), naiveTail(ws, tc.max); !bytes.Equal(got, want) {
				t.Fatalf("Bytes() = %q, want %q", got, want)
			}
		})
	}
}

func FuzzConsoleTail(f *testing.F) {
	f.Add([]byte("line one\nline two\r\n\x1b[0mthree"), uint8(7), uint8(3))
	f.Add([]byte{0xff, 0xfe, '\n', 'a'}, uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, max, chunk uint8) {
		m := int(max) + 1
		c := int(chunk) + 1
		ct := NewConsoleTail(m)
		var ws [][]byte
		for p := data; len(p) > 0; {
			k := min(c, len(p))
			ct.Write(p[:k])
			ws = append(ws, p[:k])
			p = p[k:]
		}
		got := ct.Bytes()
		if !bytes.Equal(got, naiveTail(ws, m)) || len(got) > m {
			t.Fatalf("ring %q != naive %q", got, naiveTail(ws, m))
		}
		for _, s := range []string{ct.Tail(5), ct.LastLine()} {
			if strings.ContainsAny(s, "\r\x1b\x00") {
				t.Fatalf("unclean output %q", s)
			}
		}
		if strings.Count(ct.Tail(5), "\n") > 4 || strings.Contains(ct.LastLine(), "\n") {
			t.Fatalf("too many lines: %q / %q", ct.Tail(5), ct.LastLine())
		}
	})
}

func TestTailLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\n\n\n  \nb\r\n\r\n", 5, "a\nb"},
		{"x\x1b[31mred\x00\n", 1, "x?[31mred?"},
		{"bad \xff utf8\n", 1, "bad ? utf8"},
		{"a\nb\n", 0, ""},
		{"only\n", 10, "only"},
	} {
		if got := TailLines([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("TailLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	long := strings.Repeat("é", 300) + "\n"
	if l := LastLine([]byte(long)); len(l) > lineMax+3 || !strings.HasSuffix(l, "...") || !strings.HasPrefix(l, "é") {
		t.Errorf("LastLine of a long line: %d bytes %q", len(l), l)
	}
}

// TestWatchCheck drives the watch with synthetic times: warnings at every
// Quiet of silence, none while frames come, a note when they resume.
func TestWatchCheck(t *testing.T) {
	var frames atomic.Uint64
	var log bytes.Buffer
	con := NewConsoleTail(0)
	con.Write([]byte("[    1.0] booting\n[    2.0] Run /init as init process\n"))
	t0 := time.Unix(1000, 0)
	w := newWatch(Options{Quiet: 10 * time.Second, Log: &log, Prefix: "ktstr-boot", Console: con, Frames: frames.Load}, t0)
	at := func(s float64) { w.check(t0.Add(time.Duration(s * float64(time.Second)))) }
	at(5)
	at(9.9)
	if log.Len() != 0 {
		t.Fatalf("warned before 10 s: %q", log.String())
	}
	at(10)
	want := "ktstr-boot: no frame from the guest yet, 10s after start; last console line: [    2.0] Run /init as init process\n"
	if log.String() != want {
		t.Fatalf("got %q, want %q", log.String(), want)
	}
	at(15)
	at(19.9)
	if strings.Count(log.String(), "\n") != 1 {
		t.Fatalf("warned twice within one period: %q", log.String())
	}
	frames.Store(3)
	at(21)
	if !strings.Contains(log.String(), "ktstr-boot: frames again after 21s of silence (3 frames so far)\n") {
		t.Fatalf("no resume note: %q", log.String())
	}
	log.Reset()
	for s := 22.0; s < 40; s += 2 { // frames keep coming
		frames.Add(1)
		at(s)
	}
	if log.Len() != 0 {
		t.Fatalf("warned while frames came: %q", log.String())
	}
	con.Write([]byte("BUG: soft lockup"))
	at(48.1) // last frame at 38
	at(58.1)
	got := log.String()
	if strings.Count(got, "\n") != 2 || !strings.Contains(got, "no frame from the guest for 10s (12 frames so far, 48s after start); last console line: BUG: soft lockup") ||
		!strings.Contains(got, "for 20s (12 frames so far, 58s after start)") {
		t.Fatalf("silence after frames: %q", got)
	}
}

func TestWatchInertAndStop(t *testing.T) {
	var w *Watch
	w.Stop() // nil is fine
	if Start(Options{Quiet: 0, Log: &bytes.Buffer{}, Frames: func() uint64 { return 0 }}) != nil {
		t.Fatal("Quiet 0 must disable the watch")
	}
	if Start(Options{Quiet: time.Second, Frames: func() uint64 { return 0 }}) != nil {
		t.Fatal("nil Log must disable the watch")
	}
	// A real watch with a tiny period warns on its own and stops cleanly.
	var log syncBuffer
	w = Start(Options{Quiet: 20 * time.Millisecond, Log: &log, Prefix: "p", Frames: func() uint64 { return 0 }})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "p: no frame from the guest yet") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	w.Stop()
	w.Stop()
	if !strings.Contains(log.String(), "last console line: (console not watched)") {
		t.Fatalf("no warning from a running watch: %q", log.String())
	}
}

func TestEnded(t *testing.T) {
	var b bytes.Buffer
	Ended(&b, "lab", "QEMU exited 0 after 6.1s", 3, []byte("x\nKernel panic - not syncing: Attempted to kill init! exitcode=0x00000200\n"))
	want := "lab: the run ended without a guest_exit frame: QEMU exited 0 after 6.1s, 3 frames; the guest's verdict is missing; first fault on the console: Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000200. Console's last lines:\nx\nKernel panic - not syncing: Attempted to kill init! exitcode=0x00000200\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	Ended(nil, "lab", "x", 0, nil) // no log: nothing, no panic
}

func TestFirstTrouble(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"all fine\nreboot: Power down\n", ""},
		{"a\n[ 2.4] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[ 2.5] Kernel panic - not syncing: Fatal exception in interrupt\n", "[ 2.4] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"},
		{"x\nKernel panic - not syncing: Attempted to kill init!", "Kernel panic - not syncing: Attempted to kill init!"},
		{"ktstr-init: FATAL: runtime: out of memory\r\n", "ktstr-init: FATAL: runtime: out of memory"},
	} {
		if got := FirstTrouble([]byte(tc.in)); got != tc.want {
			t.Errorf("FirstTrouble(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
