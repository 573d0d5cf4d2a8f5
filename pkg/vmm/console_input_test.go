package vmm

import (
	"encoding/binary"
	"io"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// rxQueue lays out port 0's receive queue in guest memory with the given
// buffer sizes posted, the way the guest's driver would.
func rxQueue(t *testing.T, mem *guestmem.Memory, c *virtioConsole, sizes ...int) (bufs []uint64) {
	t.Helper()
	const desc, avail, used, data = 0x10000, 0x11000, 0x12000, 0x20000
	num := uint16(8)
	le := binary.LittleEndian
	for i, sz := range sizes {
		d := make([]byte, 16)
		addr := uint64(data + i*0x1000)
		le.PutUint64(d[0:], addr)
		le.PutUint32(d[8:], uint32(sz))
		le.PutUint16(d[12:], descFWrite)
		if err := mem.Write(desc+uint64(16*i), d); err != nil {
			t.Fatal(err)
		}
		var r [2]byte
		le.PutUint16(r[:], uint16(i))
		mem.Write(avail+4+uint64(2*i), r[:])
		bufs = append(bufs, addr)
	}
	var idx [2]byte
	le.PutUint16(idx[:], uint16(len(sizes)))
	mem.Write(avail+2, idx[:])
	c.t.queues[qRx0] = virtq{Num: num, Ready: true, Desc: desc, Avail: avail, Used: used}
	return bufs
}

func TestConsoleInput(t *testing.T) {
	mem := newMemoryFromBytes(make([]byte, 64<<20))
	irqs := 0
	c := newVirtioConsole(mem, io.Discard, io.Discard, func() { irqs++ })
	if n := c.Input([]byte("early")); n != 0 {
		t.Fatalf("input taken before the queue is ready: %d", n)
	}
	bufs := rxQueue(t, mem, c, 4, 8)
	n := c.Input([]byte("hello, world!"))
	if n != 12 {
		t.Fatalf("took %d bytes, want 12 (4+8 of buffer)", n)
	}
	b0, _ := mem.Slice(bufs[0], 4)
	b1, _ := mem.Slice(bufs[1], 8)
	if string(b0)+string(b1) != "hello, world" {
		t.Errorf("guest buffers hold %q %q", b0, b1)
	}
	usedIdx, _ := mem.U16(0x12000 + 2)
	len0, _ := mem.U32(0x12000 + 4 + 4)
	len1, _ := mem.U32(0x12000 + 12 + 4)
	if usedIdx != 2 || len0 != 4 || len1 != 8 || irqs == 0 {
		t.Errorf("used idx %d lens %d %d irqs %d", usedIdx, len0, len1, irqs)
	}
	if n := c.Input([]byte("!")); n != 0 {
		t.Errorf("took %d bytes without buffers", n)
	}
	if c.t.Broken() != "" {
		t.Errorf("transport broken: %s", c.t.Broken())
	}
}
