package runwatch

import (
	"bytes"
	"strings"
	"sync"
)

// DefaultTailBytes is how much console a ConsoleTail keeps by default:
// enough for the last 25 lines of a kernel oops with its call trace.
const DefaultTailBytes = 16 << 10

// lineMax bounds the last line LastLine returns.
const lineMax = 240

// ConsoleTail is an io.Writer that keeps the last Max bytes written to it
// (a ring; memory stays bounded whatever the guest prints). It is safe for
// concurrent use.
type ConsoleTail struct {
	mu   sync.Mutex
	buf  []byte // ring storage, len == max once full
	next int    // where the next byte goes once full
	full bool
	max  int
}

// NewConsoleTail returns a ConsoleTail keeping max bytes (DefaultTailBytes
// when max <= 0).
func NewConsoleTail(max int) *ConsoleTail {
	if max <= 0 {
		max = DefaultTailBytes
	}
	return &ConsoleTail{max: max}
}

// Write keeps p's bytes; it never fails.
func (t *ConsoleTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		t.next, t.full = 0, true
		return n, nil
	}
	if !t.full {
		room := t.max - len(t.buf)
		if len(p) <= room {
			t.buf = append(t.buf, p...)
			if len(t.buf) == t.max {
				t.full = true
			}
			return n, nil
		}
		t.buf = append(t.buf, p[:room]...)
		p = p[room:]
		t.full = true
	}
	for len(p) > 0 {
		k := copy(t.buf[t.next:], p)
		p = p[k:]
		t.next = (t.next + k) % t.max
	}
	return n, nil
}

// Bytes returns the kept bytes, oldest first.
func (t *ConsoleTail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]byte(nil), t.buf...)
	}
	out := make([]byte, 0, t.max)
	out = append(out, t.buf[t.next:]...)
	return append(out, t.buf[:t.next]...)
}

// LastLine returns the last non-blank console line (a partial last line
// counts), cleaned for a one-line message; "" when there is none.
func (t *ConsoleTail) LastLine() string {
	return LastLine(t.Bytes())
}

// Tail returns the last n non-blank console lines, cleaned, one per line.
func (t *ConsoleTail) Tail(n int) string {
	return TailLines(t.Bytes(), n)
}

// LastLine returns b's last non-blank line, cleaned (see TailLines) and cut
// to 240 bytes.
func LastLine(b []byte) string {
	s := TailLines(b, 1)
	if len(s) > lineMax {
		s = strings.ToValidUTF8(s[:lineMax], "") + "..."
	}
	return s
}

// TailLines returns b's last n non-blank lines, one per line with no
// trailing newline. Carriage returns and other control characters
// (terminal escapes from the guest) are replaced so that the text is safe
// to print, and invalid UTF-8 becomes '?'.
func TailLines(b []byte, n int) string {
	if n <= 0 {
		return ""
	}
	var lines []string
	rest := b
	for len(rest) > 0 && len(lines) < n {
		i := bytes.LastIndexByte(rest, '\n')
		line := rest[i+1:]
		if i < 0 {
			line = rest
			rest = nil
		} else {
			rest = rest[:i]
		}
		if c := clean(line); strings.TrimSpace(c) != "" {
			lines = append(lines, c)
		}
	}
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return strings.Join(lines, "\n")
}

func clean(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r == '\r':
			return -1
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return '?'
		}
		return r
	}, strings.TrimRight(s, "\r"))
}

// troubleMarks are console texts that start a kernel's account of a fatal
// fault (and ktstr-init's own last words, see pkg/guest).
var troubleMarks = [][]byte{
	[]byte("Kernel panic - not syncing"), []byte("Oops:"), []byte("BUG:"),
	[]byte("general protection fault"), []byte("Attempted to kill init"),
	[]byte("ktstr-init: FATAL"),
}

// FirstTrouble returns the first console line in b that reports a fatal
// fault (a kernel oops, BUG, panic, ktstr-init's FATAL line), cleaned and
// cut like LastLine; "" when there is none. A tail of the console often
// shows only the end of a call trace: this line says what happened.
func FirstTrouble(b []byte) string {
	best := -1
	for _, m := range troubleMarks {
		if i := bytes.Index(b, m); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	start := bytes.LastIndexByte(b[:best], '\n') + 1
	end := bytes.IndexByte(b[best:], '\n')
	if end < 0 {
		end = len(b) - best
	}
	return LastLine(b[start : best+end])
}
