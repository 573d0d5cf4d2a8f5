package vmm

import (
	"bytes"
	"io"
	"sync"
)

// ConsoleWatch passes the guest console through, line-buffered, and
// reports the kernel's panic and power-down messages, which are how a
// panic=-1 reboot and a poweroff without ACPI are told apart from others.
// ktstr-boot's QEMU path (pkg/qemu) watches its console with it too.
type ConsoleWatch struct {
	mu    sync.Mutex
	w     io.Writer
	line  []byte
	event func(string)
}

const consoleLineMax = 512

var consolePatterns = []struct {
	text  []byte
	event string
}{
	{[]byte("Kernel panic - not syncing"), ReasonPanic},
	{[]byte("reboot: Power down"), ReasonPoweroff},
}

// NewConsoleWatch returns a ConsoleWatch writing to w that calls event
// with ReasonPanic or ReasonPoweroff when the console shows one.
func NewConsoleWatch(w io.Writer, event func(string)) *ConsoleWatch {
	if w == nil {
		w = io.Discard
	}
	return &ConsoleWatch{w: w, event: event}
}

func (c *ConsoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			if len(c.line) >= consoleLineMax {
				c.flushLocked()
			}
			break
		}
		c.line = append(c.line, p[:i+1]...)
		p = p[i+1:]
		c.flushLocked()
	}
	return n, nil
}

func (c *ConsoleWatch) flushLocked() {
	if len(c.line) == 0 {
		return
	}
	for _, pat := range consolePatterns {
		if bytes.Contains(c.line, pat.text) {
			c.event(pat.event)
		}
	}
	c.w.Write(c.line)
	c.line = c.line[:0]
}

// Flush writes out a partial last line.
func (c *ConsoleWatch) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}
