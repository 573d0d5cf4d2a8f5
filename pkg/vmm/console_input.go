package vmm

import (
	"io"
	"time"
)

// Keyboard input for hvc0 (--shell): bytes go into the buffers the guest
// posted on port 0's receive queue. The guest is never waited for: bytes
// it has no buffers for stay with the caller, who offers them again.

// Input offers b to the guest's hvc0 and returns how many bytes it took.
func (c *virtioConsole) Input(b []byte) int {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if !c.t.queues[qRx0].Ready || len(b) == 0 {
		return 0
	}
	n := 0
	c.serveLocked(qRx0, func(ch descChain) (uint32, bool) {
		w := 0
		for _, buf := range ch.Bufs {
			if buf.Writable && n < len(b) {
				k := copy(buf.Data, b[n:])
				n += k
				w += k
			}
		}
		return uint32(w), n < len(b)
	})
	return n
}

// inputPoll is how often pending keyboard bytes are offered again while
// the guest has no receive buffers.
const inputPoll = 5 * time.Millisecond

// pumpInput copies r to hvc0 until r ends or the machine stops.
func (m *machine) pumpInput(r io.Reader) {
	buf := make([]byte, 4096)
	for !m.stopped.Load() {
		n, err := r.Read(buf)
		rest := buf[:n]
		for len(rest) > 0 && !m.stopped.Load() {
			k := m.console.Input(rest)
			rest = rest[k:]
			if len(rest) > 0 {
				time.Sleep(inputPoll)
			}
		}
		if err != nil {
			return
		}
	}
}
