package vmm

import (
	"encoding/binary"
	"io"
	"sync"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// virtio console (virtio 1.x, 5.3) with VIRTIO_CONSOLE_F_MULTIPORT. Port 0
// is the guest's hvc0 console; port 1, named "ktstr", carries the frame
// stream to stdout.
const (
	virtioIDConsole     = 3
	consoleFMultiport   = 1 << 1
	consolePorts        = 2
	qRx0, qTx0          = 0, 1
	qCtrlRx, qCtrlTx    = 2, 3
	qRx1, qTx1          = 4, 5
	consoleQueues       = 6
	StreamPortName      = "ktstr"
	ctrlMsgSize         = 8
	ctrlPendingLimit    = 64
	ctrlDeviceReady     = 0
	ctrlPortAdd         = 1
	ctrlPortReady       = 3
	ctrlConsolePort     = 4
	ctrlPortOpen        = 6
	ctrlPortName        = 7
	streamPort          = 1
	consoleQueueNotifyQ = qTx1
)

// virtioConsole is the virtio-mmio console device.
type virtioConsole struct {
	t       *mmioTransport
	mem     *guestmem.Memory
	hvc     io.Writer
	stream  io.Writer
	pending [][]byte
	gen     uint64 // bumped on reset; stale pushes are dropped
	kick    chan struct{}
	flush   chan chan struct{} // quiesce requests to the stream worker
	started bool
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped bool
}

// newVirtioConsole returns the device; hvc receives port 0's output, stream
// port 1's. Start its stream worker with Start.
func newVirtioConsole(mem *guestmem.Memory, hvc, stream io.Writer, raise func()) *virtioConsole {
	c := &virtioConsole{mem: mem, hvc: hvc, stream: stream, kick: make(chan struct{}, 1), flush: make(chan chan struct{}), stop: make(chan struct{})}
	c.t = newMMIOTransport(mem, c, raise)
	return c
}

// Transport is the device's MMIO register file.
func (c *virtioConsole) Transport() *mmioTransport { return c.t }

func (c *virtioConsole) deviceID() uint32 { return virtioIDConsole }
func (c *virtioConsole) features() uint64 { return featVersion1 | consoleFMultiport }
func (c *virtioConsole) numQueues() int   { return consoleQueues }

func (c *virtioConsole) config() []byte {
	b := make([]byte, 12) // cols u16, rows u16, max_nr_ports u32, emerg_wr u32
	binary.LittleEndian.PutUint32(b[4:], consolePorts)
	return b
}

func (c *virtioConsole) reset() {
	c.pending = nil
	c.gen++
}

// Kick wakes the stream worker (the MMIO notify exit or an ioeventfd).
func (c *virtioConsole) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *virtioConsole) notify(q int) {
	switch q {
	case qTx0:
		c.drainConsoleLocked()
	case qCtrlTx:
		c.controlLocked()
	case qCtrlRx:
		c.flushControlLocked()
	case qTx1:
		c.Kick()
	}
}

// serveLocked pops the available chains of queue qi one by one and hands
// each to fn, which returns how many bytes it wrote into the chain and
// whether to go on; every popped chain is completed, and one interrupt is
// raised if any was. A malformed queue fails the device. Called with
// c.t.mu held.
func (c *virtioConsole) serveLocked(qi int, fn func(descChain) (written uint32, more bool)) {
	q := &c.t.queues[qi]
	used := false
	for more := true; more; {
		ch, ok, err := q.Pop(c.mem)
		if err != nil {
			c.t.fail(err.Error())
			break
		}
		if !ok {
			break
		}
		var n uint32
		n, more = fn(ch)
		if err := q.Push(c.mem, ch.Head, n); err != nil {
			c.t.fail(err.Error())
			break
		}
		used = true
	}
	if used {
		c.t.interrupt()
	}
}

func (c *virtioConsole) drainConsoleLocked() {
	c.serveLocked(qTx0, func(ch descChain) (uint32, bool) {
		for _, b := range ch.Bufs {
			if !b.Writable {
				c.hvc.Write(b.Data)
			}
		}
		return 0, true
	})
}

func ctrlMsg(id uint32, event, value uint16, extra string) []byte {
	b := make([]byte, ctrlMsgSize, ctrlMsgSize+len(extra))
	binary.LittleEndian.PutUint32(b[0:], id)
	binary.LittleEndian.PutUint16(b[4:], event)
	binary.LittleEndian.PutUint16(b[6:], value)
	return append(b, extra...)
}

func (c *virtioConsole) queueControl(m []byte) {
	if len(c.pending) < ctrlPendingLimit {
		c.pending = append(c.pending, m)
	}
}

// controlLocked handles the driver's control messages (c_ovq).
func (c *virtioConsole) controlLocked() {
	c.serveLocked(qCtrlTx, func(ch descChain) (uint32, bool) {
		var msg [ctrlMsgSize]byte
		n := 0
		for _, b := range ch.Bufs {
			if !b.Writable && n < ctrlMsgSize {
				n += copy(msg[n:], b.Data)
			}
		}
		if n == ctrlMsgSize {
			c.handleControl(binary.LittleEndian.Uint32(msg[0:]), binary.LittleEndian.Uint16(msg[4:]), binary.LittleEndian.Uint16(msg[6:]))
		}
		return 0, true
	})
	c.flushControlLocked()
}

func (c *virtioConsole) handleControl(id uint32, event, value uint16) {
	switch event {
	case ctrlDeviceReady:
		if value != 1 {
			return
		}
		for p := uint32(0); p < consolePorts; p++ {
			c.queueControl(ctrlMsg(p, ctrlPortAdd, 0, ""))
		}
	case ctrlPortReady:
		if value != 1 {
			return
		}
		switch id {
		case 0:
			c.queueControl(ctrlMsg(0, ctrlConsolePort, 1, ""))
			c.queueControl(ctrlMsg(0, ctrlPortOpen, 1, ""))
		case streamPort:
			c.queueControl(ctrlMsg(streamPort, ctrlPortName, 0, StreamPortName))
			c.queueControl(ctrlMsg(streamPort, ctrlPortOpen, 1, ""))
		}
	}
}

// flushControlLocked moves pending control messages into the driver's
// receive buffers (c_ivq).
func (c *virtioConsole) flushControlLocked() {
	if len(c.pending) == 0 {
		return
	}
	c.serveLocked(qCtrlRx, func(ch descChain) (uint32, bool) {
		m := c.pending[0]
		n := 0
		for _, b := range ch.Bufs {
			if b.Writable && n < len(m) {
				n += copy(b.Data, m[n:])
			}
		}
		if n != len(m) {
			return 0, false // buffer too small: hand it back empty, keep the message
		}
		c.pending = c.pending[1:]
		return uint32(n), len(c.pending) > 0
	})
}

// Start runs the stream worker: it moves port 1's buffers to the stream
// writer, completing each descriptor chain only once its bytes were
// written. A blocked writer therefore blocks the guest's writer, and the
// VMM buffers nothing.
func (c *virtioConsole) Start() {
	c.started = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			var ack chan struct{}
			select {
			case <-c.kick:
			case ack = <-c.flush:
			case <-c.stop:
				return
			}
			for c.streamOne() {
			}
			if ack != nil {
				close(ack)
			}
		}
	}()
}

// quiesce has the stream worker move every buffer the guest queued on
// port 1 before a device reset to the stream, in order, and waits for it
// (blocking the resetting vCPU while stdout is blocked, as any write
// does). Without a worker it drains directly.
func (c *virtioConsole) quiesce() {
	if !c.started {
		c.Drain()
		return
	}
	ack := make(chan struct{})
	select {
	case c.flush <- ack:
		select {
		case <-ack:
		case <-c.stop:
		}
	case <-c.stop:
	}
}

func (c *virtioConsole) streamOne() bool {
	c.t.mu.Lock()
	q := &c.t.queues[qTx1]
	ch, ok, err := q.Pop(c.mem)
	gen := c.gen
	if err != nil {
		c.t.fail(err.Error())
	}
	c.t.mu.Unlock()
	if !ok {
		return false
	}
	for _, b := range ch.Bufs {
		if !b.Writable && len(b.Data) > 0 {
			if _, err := c.stream.Write(b.Data); err != nil {
				break // the stream writer reports its own failure
			}
		}
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if gen != c.gen || !q.Ready {
		return true
	}
	if err := q.Push(c.mem, ch.Head, 0); err != nil {
		c.t.fail(err.Error())
		return false
	}
	c.t.interrupt()
	return true
}

// Drain moves to the stream whatever the guest queued on port 1 that the
// worker has not taken yet: a guest may queue its last frames and power
// off before its kick is served (the Linux port driver returns from
// write() once the buffer is queued). Call it after Stop, with every vCPU
// stopped, so the queue can no longer grow; it takes at most one pass
// over the ring.
func (c *virtioConsole) Drain() {
	for c.streamOne() {
	}
}

// Stop ends the stream worker and waits for it (after its current write).
func (c *virtioConsole) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	close(c.stop)
	c.wg.Wait()
}
