package interactive

import (
	"bytes"
	"testing"
)

// FuzzExecOutput feeds guest bytes (untrusted) to the status filter in
// two pieces: it must never grow the output, and without a status prefix
// in the input the output is the input with "\r\n" line ends made "\n".
func FuzzExecOutput(f *testing.F) {
	f.Add([]byte("hello\r\nKTSTR_EXEC_STATUS=3\r\n"), 7)
	f.Add([]byte("KTSTR_EXEC_STATUS=999\n\r\r\n"), 0)
	f.Add(bytes.Repeat([]byte("z"), maxLine+3), maxLine)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		if cut < 0 || cut > len(in) {
			cut = len(in) / 2
		}
		var out bytes.Buffer
		e := NewExecOutput(&out)
		e.Write(in[:cut])
		e.Write(in[cut:])
		e.Flush()
		if out.Len() > len(in) {
			t.Fatalf("output %d bytes from %d", out.Len(), len(in))
		}
		code, ok := e.Status()
		if ok && (code < 0 || code > 255) {
			t.Fatalf("status %d out of range", code)
		}
		if !bytes.Contains(in, []byte("KTSTR_EXEC_STATUS=")) {
			if ok {
				t.Fatal("status without a status line")
			}
			if want := crlfLines(in); !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("output %q, want %q", out.Bytes(), want)
			}
		}
	})
}

// crlfLines is the reference: "\r\n" at the end of every complete line
// becomes "\n", a line cut at maxLine bytes is passed on as is.
func crlfLines(in []byte) []byte {
	var out, line []byte
	for _, b := range in {
		line = append(line, b)
		if b == '\n' || len(line) >= maxLine {
			if b == '\n' {
				line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
				line = append(line, '\n')
			}
			out = append(out, line...)
			line = line[:0]
		}
	}
	return append(out, line...)
}
