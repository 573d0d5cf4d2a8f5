package lab

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// FuzzAgentClient feeds arbitrary bytes as the agent's side of the
// protocol (L1 is a guest: untrusted) to the host client while a command
// is pending: the client must never panic, and must end the command with
// a result or an error.
func FuzzAgentClient(f *testing.F) {
	f.Add([]byte(`{"hello":"ktstr-lab-agent/1","uptime_ms":5}` + "\n" + `{"id":1,"fd":1,"data":"aGk="}` + "\n" + `{"id":1,"done":true,"exit":0}` + "\n"))
	f.Add([]byte(`{"id":1,"fd":2,"data":"!!notbase64"}` + "\n" + `{"id":1,"done":true,"exit":-1,"timed_out":true}` + "\n"))
	f.Add([]byte(`{"id":18446744073709551615,"done":true}` + "\n" + "garbage\n{\n"))
	f.Add([]byte(`{"id":1,"fd":7,"data":"AAAA"}{"id":1,"done":true}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rw := &fuzzConn{r: bytes.NewReader(in)}
		c := newAgentClient(rw)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := c.run(ctx, "true", time.Millisecond, nil)
		if err == nil && r == nil {
			t.Fatal("no result and no error")
		}
	})
}

type fuzzConn struct{ r io.Reader }

func (f *fuzzConn) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f *fuzzConn) Write(p []byte) (int, error) { return len(p), nil }
