package vmm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// Split virtqueue (virtio 1.x, 2.7). Every address and index read from
// guest memory is checked; a malformed queue yields an error, never an
// out-of-range access, a panic or an endless walk.
const (
	descSize      = 16
	descFNext     = 1
	descFWrite    = 2
	descFIndirect = 4
	usedFNoNotify = 1
	// QueueMaxSize is the largest queue the device offers.
	QueueMaxSize = 256
)

// ErrQueue is wrapped by every virtqueue protocol violation.
var ErrQueue = errors.New("virtqueue violation")

// virtq is one split virtqueue's device-side state.
type virtq struct {
	Num               uint16 // size chosen by the driver
	Ready             bool
	Desc, Avail, Used uint64
	lastAvail         uint16
	usedIdx           uint16
	noNotify          bool
}

// Buf is one descriptor's buffer: guest memory, aliased.
type Buf struct {
	Data     []byte
	Writable bool
}

// descChain is a popped descriptor chain.
type descChain struct {
	Head uint16
	Bufs []Buf
}

func qerr(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrQueue, fmt.Sprintf(f, a...)) }

// Validate checks the driver's queue configuration against guest RAM.
func (q *virtq) Validate(m *guestmem.Memory) error {
	n := uint64(q.Num)
	if n == 0 || n > QueueMaxSize || n&(n-1) != 0 {
		return qerr("queue size %d is not a power of two in 1..%d", n, QueueMaxSize)
	}
	if q.Desc%16 != 0 || q.Avail%2 != 0 || q.Used%4 != 0 {
		return qerr("misaligned rings (desc %#x, avail %#x, used %#x)", q.Desc, q.Avail, q.Used)
	}
	if _, err := m.Slice(q.Desc, descSize*n); err != nil {
		return qerr("descriptor table: %v", err)
	}
	if _, err := m.Slice(q.Avail, 6+2*n); err != nil {
		return qerr("available ring: %v", err)
	}
	if _, err := m.Slice(q.Used, 6+8*n); err != nil {
		return qerr("used ring: %v", err)
	}
	return nil
}

// Reset forgets the driver's configuration.
func (q *virtq) Reset() { *q = virtq{} }

// Pending reports whether the driver has made chains available.
func (q *virtq) Pending(m *guestmem.Memory) (bool, error) {
	idx, err := m.U16(q.Avail + 2)
	if err != nil {
		return false, qerr("avail idx: %v", err)
	}
	if uint16(idx-q.lastAvail) > q.Num {
		return false, qerr("avail idx %d is %d ahead of %d, queue holds %d", idx, uint16(idx-q.lastAvail), q.lastAvail, q.Num)
	}
	return idx != q.lastAvail, nil
}

// Pop takes the next available chain; ok is false when none is available.
// Chains are limited to Num descriptors, so a loop in the next links ends
// in an error rather than a hang.
func (q *virtq) Pop(m *guestmem.Memory) (c descChain, ok bool, err error) {
	if !q.Ready {
		return c, false, nil
	}
	p, err := q.Pending(m)
	if err != nil || !p {
		return c, false, err
	}
	head, err := m.U16(q.Avail + 4 + 2*uint64(q.lastAvail%q.Num))
	if err != nil {
		return c, false, qerr("avail ring: %v", err)
	}
	q.lastAvail++
	if head >= q.Num {
		return c, false, qerr("head index %d beyond queue size %d", head, q.Num)
	}
	c.Head = head
	idx := head
	for n := 0; ; n++ {
		if n >= int(q.Num) {
			return c, false, qerr("descriptor chain from %d is longer than the queue (a loop?)", head)
		}
		d, err := m.Slice(q.Desc+descSize*uint64(idx), descSize)
		if err != nil {
			return c, false, qerr("descriptor %d: %v", idx, err)
		}
		addr := binary.LittleEndian.Uint64(d[0:])
		ln := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])
		if flags&descFIndirect != 0 {
			return c, false, qerr("indirect descriptor %d, but VIRTIO_F_INDIRECT_DESC was not offered", idx)
		}
		data, err := m.Slice(addr, uint64(ln))
		if err != nil {
			return c, false, qerr("descriptor %d buffer: %v", idx, err)
		}
		c.Bufs = append(c.Bufs, Buf{Data: data, Writable: flags&descFWrite != 0})
		if flags&descFNext == 0 {
			return c, true, nil
		}
		if next >= q.Num {
			return c, false, qerr("descriptor %d links to %d beyond queue size %d", idx, next, q.Num)
		}
		idx = next
	}
}

// Push returns chain head to the driver with written bytes.
func (q *virtq) Push(m *guestmem.Memory, head uint16, written uint32) error {
	e, err := m.Slice(q.Used+4+8*uint64(q.usedIdx%q.Num), 8)
	if err != nil {
		return qerr("used ring: %v", err)
	}
	binary.LittleEndian.PutUint32(e[0:], uint32(head))
	binary.LittleEndian.PutUint32(e[4:], written)
	q.usedIdx++
	return q.publishUsed(m)
}

// SetNoNotify asks the driver not to notify (VIRTQ_USED_F_NO_NOTIFY) while
// the device is busy draining the queue anyway.
func (q *virtq) SetNoNotify(m *guestmem.Memory, v bool) error {
	q.noNotify = v
	return q.publishUsed(m)
}

// publishUsed stores flags and idx as one aligned 32-bit word, after the
// used element: the store is a release barrier, so the driver never sees
// the new index before the element.
func (q *virtq) publishUsed(m *guestmem.Memory) error {
	w, err := m.Slice(q.Used, 4)
	if err != nil {
		return qerr("used ring: %v", err)
	}
	var flags uint32
	if q.noNotify {
		flags = usedFNoNotify
	}
	p := (*uint32)(unsafe.Pointer(unsafe.SliceData(w)))
	atomic.StoreUint32(p, flags|uint32(q.usedIdx)<<16)
	return nil
}
