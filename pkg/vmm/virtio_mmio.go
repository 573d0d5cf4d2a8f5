package vmm

import (
	"encoding/binary"
	"sync"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// virtio-mmio register offsets (virtio 1.x, 4.2.2), version 2 layout.
const (
	mmioMagic          = 0x000
	mmioVersion        = 0x004
	mmioDeviceID       = 0x008
	mmioVendorID       = 0x00C
	mmioDevFeatures    = 0x010
	mmioDevFeaturesSel = 0x014
	mmioDrvFeatures    = 0x020
	mmioDrvFeaturesSel = 0x024
	mmioQueueSel       = 0x030
	mmioQueueNumMax    = 0x034
	mmioQueueNum       = 0x038
	mmioQueueReady     = 0x044
	mmioQueueNotify    = 0x050
	mmioIntStatus      = 0x060
	mmioIntACK         = 0x064
	mmioStatus         = 0x070
	mmioQueueDescLo    = 0x080
	mmioQueueDescHi    = 0x084
	mmioQueueAvailLo   = 0x090
	mmioQueueAvailHi   = 0x094
	mmioQueueUsedLo    = 0x0A0
	mmioQueueUsedHi    = 0x0A4
	mmioConfigGen      = 0x0FC
	mmioConfig         = 0x100

	mmioMagicValue  = 0x74726976 // "virt"
	virtioVendor    = 0x5453544B // "KTST"
	statusDriverOK  = 4
	statusNeedReset = 0x40
	intUsedBuffer   = 1
	featVersion1    = 1 << 32
)

// mmioBackend is a virtio device behind the MMIO transport. Its methods
// are called with the transport's lock held.
type mmioBackend interface {
	deviceID() uint32
	features() uint64
	config() []byte
	numQueues() int
	// notify is called when the driver kicks queue q.
	notify(q int)
	// quiesce is called, without the transport lock, when the driver is
	// about to reset the device (writes 0 to the status register): the
	// device finishes the buffers the driver made available before it.
	quiesce()
	// reset is called when the driver writes 0 to the status register.
	reset()
}

// mmioTransport is the register file of one virtio-mmio device.
type mmioTransport struct {
	mu      sync.Mutex
	mem     *guestmem.Memory
	be      mmioBackend
	raise   func()
	queues  []virtq
	status  uint32
	intStat uint32
	devSel  uint32
	drvSel  uint32
	drvFeat uint64
	qsel    uint32
	broken  string // first protocol violation, for diagnostics
}

func newMMIOTransport(mem *guestmem.Memory, be mmioBackend, raise func()) *mmioTransport {
	if raise == nil {
		raise = func() {}
	}
	return &mmioTransport{mem: mem, be: be, raise: raise, queues: make([]virtq, be.numQueues())}
}

func (t *mmioTransport) queue() *virtq {
	if int(t.qsel) < len(t.queues) {
		return &t.queues[t.qsel]
	}
	return nil
}

// Read handles a guest load from offset off of the device window. data
// is filled in; accesses the device does not define read as zero.
func (t *mmioTransport) Read(off uint64, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(data)
	if off >= mmioConfig {
		cfg := t.be.config()
		o := off - mmioConfig
		if o < uint64(len(cfg)) {
			copy(data, cfg[o:])
		}
		return
	}
	if len(data) != 4 || off%4 != 0 {
		return
	}
	var v uint32
	switch off {
	case mmioMagic:
		v = mmioMagicValue
	case mmioVersion:
		v = 2
	case mmioDeviceID:
		v = t.be.deviceID()
	case mmioVendorID:
		v = virtioVendor
	case mmioDevFeatures:
		if t.devSel < 2 {
			v = uint32(t.be.features() >> (32 * t.devSel))
		}
	case mmioQueueNumMax:
		if t.queue() != nil {
			v = QueueMaxSize
		}
	case mmioQueueReady:
		if q := t.queue(); q != nil && q.Ready {
			v = 1
		}
	case mmioIntStatus:
		v = t.intStat
	case mmioStatus:
		v = t.status
	case mmioConfigGen:
		v = 0
	}
	binary.LittleEndian.PutUint32(data, v)
}

// Write handles a guest store to offset off of the device window.
func (t *mmioTransport) Write(off uint64, data []byte) {
	if off == mmioStatus && len(data) == 4 && binary.LittleEndian.Uint32(data) == 0 {
		// Linux resets its virtio devices on the way to reboot and power
		// off, possibly right after queueing its last output: serve that
		// first, outside the lock the device worker needs.
		t.be.quiesce()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if off >= mmioConfig || len(data) != 4 || off%4 != 0 {
		return // config space is read-only for the console
	}
	v := binary.LittleEndian.Uint32(data)
	q := t.queue()
	setLo := func(p *uint64) { *p = *p&^0xFFFFFFFF | uint64(v) }
	setHi := func(p *uint64) { *p = *p&0xFFFFFFFF | uint64(v)<<32 }
	switch off {
	case mmioDevFeaturesSel:
		t.devSel = v
	case mmioDrvFeaturesSel:
		t.drvSel = v
	case mmioDrvFeatures:
		if t.drvSel < 2 {
			sh := 32 * t.drvSel
			t.drvFeat = t.drvFeat&^(0xFFFFFFFF<<sh) | uint64(v)<<sh
			t.drvFeat &= t.be.features()
		}
	case mmioQueueSel:
		t.qsel = v
	case mmioQueueNum:
		if q != nil && !q.Ready {
			q.Num = uint16(min(v, 0xFFFF))
		}
	case mmioQueueReady:
		if q == nil {
			return
		}
		if v == 0 {
			q.Ready = false
			return
		}
		if err := q.Validate(t.mem); err != nil {
			t.fail(err.Error())
			return
		}
		q.Ready = true
	case mmioQueueDescLo:
		if q != nil && !q.Ready {
			setLo(&q.Desc)
		}
	case mmioQueueDescHi:
		if q != nil && !q.Ready {
			setHi(&q.Desc)
		}
	case mmioQueueAvailLo:
		if q != nil && !q.Ready {
			setLo(&q.Avail)
		}
	case mmioQueueAvailHi:
		if q != nil && !q.Ready {
			setHi(&q.Avail)
		}
	case mmioQueueUsedLo:
		if q != nil && !q.Ready {
			setLo(&q.Used)
		}
	case mmioQueueUsedHi:
		if q != nil && !q.Ready {
			setHi(&q.Used)
		}
	case mmioQueueNotify:
		if int(v) < len(t.queues) && t.queues[v].Ready && t.status&statusDriverOK != 0 {
			t.be.notify(int(v))
		}
	case mmioIntACK:
		t.intStat &^= v
	case mmioStatus:
		if v == 0 {
			t.resetLocked()
			return
		}
		t.status = v | t.status&statusNeedReset
	}
}

func (t *mmioTransport) resetLocked() {
	for i := range t.queues {
		t.queues[i].Reset()
	}
	t.status, t.intStat, t.drvFeat, t.devSel, t.drvSel, t.qsel = 0, 0, 0, 0, 0, 0
	t.broken = ""
	t.be.reset()
}

// fail records a driver protocol violation and asks for a reset.
func (t *mmioTransport) fail(why string) {
	if t.broken == "" {
		t.broken = why
	}
	t.status |= statusNeedReset
	t.intStat |= 2 // configuration change: the driver looks at the status
	t.raise()
}

// interrupt signals used buffers to the driver.
func (t *mmioTransport) interrupt() {
	t.intStat |= intUsedBuffer
	t.raise()
}

// Broken returns the first protocol violation seen, or "".
func (t *mmioTransport) Broken() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.broken
}
