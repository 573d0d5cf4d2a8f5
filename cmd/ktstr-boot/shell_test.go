package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestExecOutput(t *testing.T) {
	var out bytes.Buffer
	e := &execOutput{out: &out}
	// hvc0 is a tty: "\r\n" line ends, status line in pieces.
	for _, chunk := range []string{"hello\r\nwor", "ld\r\nKTSTR_EXEC_", "STATUS=3\r\n", "tail"} {
		e.Write([]byte(chunk))
	}
	e.Flush()
	if got := out.String(); got != "hello\nworld\ntail" {
		t.Errorf("output %q", got)
	}
	if code, ok := e.Status(); !ok || code != 3 {
		t.Errorf("status %d %v, want 3", code, ok)
	}
	var out2 bytes.Buffer
	e2 := &execOutput{out: &out2}
	e2.Write([]byte("KTSTR_EXEC_STATUS=999\nKTSTR_EXEC_STATUS=x\n"))
	if _, ok := e2.Status(); ok || out2.String() != "KTSTR_EXEC_STATUS=999\nKTSTR_EXEC_STATUS=x\n" {
		t.Errorf("bad status lines swallowed: %q", out2.String())
	}
}

func TestKeyboard(t *testing.T) {
	quit := 0
	k := &keyboard{r: strings.NewReader("ls\r\x01\x01x\x01xafter"), quit: func() { quit++ }}
	got, err := io.ReadAll(k)
	if err != nil || string(got) != "ls\r\x01x" || quit != 1 {
		t.Errorf("read %q err %v quit %d", got, err, quit)
	}
}
