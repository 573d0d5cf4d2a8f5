package vmm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

func TestSerialProbe(t *testing.T) {
	var out bytes.Buffer
	irqs := 0
	s := newUART(&out, func() { irqs++ })
	// Linux's 8250 probe: scratch register, loopback MSR check, FIFO in IIR
	s.Write(uartSCR, 0xA5)
	if s.Read(uartSCR) != 0xA5 {
		t.Error("scratch register lost")
	}
	s.Write(uartMCR, mcrLoop|0x0A)
	if v := s.Read(uartMSR) & 0xF0; v != 0x90 {
		t.Errorf("loopback MSR %#x, want 0x90", v)
	}
	s.Write(uartMCR, 0)
	s.Write(uartIIR, 1) // enable FIFOs
	if s.Read(uartIIR)>>6 != 3 {
		t.Error("IIR does not report a 16550A FIFO")
	}
	// divisor latch does not disturb THR/IER
	s.Write(uartLCR, lcrDLAB)
	s.Write(uartRBR, 1)
	s.Write(uartIER, 0)
	s.Write(uartLCR, 3)
	if s.Read(uartLSR)&(lsrTHRE|lsrTEMT) != lsrTHRE|lsrTEMT {
		t.Error("transmitter not empty")
	}
	s.Write(uartRBR, 'A')
	if out.String() != "A" || irqs != 0 {
		t.Errorf("out %q irqs %d", out.String(), irqs)
	}
	// THR-empty interrupt: raised when enabled and after each byte
	s.Write(uartIER, ierTHRI)
	if irqs != 1 || s.Read(uartIIR)&0x0F != iirTHRI {
		t.Fatalf("THRI not raised (irqs %d)", irqs)
	}
	if s.Read(uartIIR)&0x0F != iirNone {
		t.Error("THRI not cleared by reading IIR")
	}
	s.Write(uartRBR, 'B')
	if irqs != 2 {
		t.Errorf("irqs %d after second byte", irqs)
	}
}

func TestSerialSysRq(t *testing.T) {
	s := newUART(&bytes.Buffer{}, nil)
	s.Write(uartIER, ierRDI|ierRLSI)
	s.SysRq('t')
	if lsr := s.Read(uartLSR); lsr&(lsrDR|lsrBI) != lsrDR|lsrBI {
		t.Fatalf("LSR %#x lacks DR|BI for the break", lsr)
	}
	if iir := s.Read(uartIIR) & 0x0F; iir != iirRLSI {
		t.Errorf("IIR %#x, want line status", iir)
	}
	if c := s.Read(uartRBR); c != 0 {
		t.Errorf("break char %#x", c)
	}
	if lsr := s.Read(uartLSR); lsr&lsrBI != 0 || lsr&lsrDR == 0 {
		t.Fatalf("LSR %#x after break", lsr)
	}
	if c := s.Read(uartRBR); c != 't' {
		t.Errorf("key %q", c)
	}
	if s.Read(uartLSR)&lsrDR != 0 {
		t.Error("FIFO not empty")
	}
	for i := 0; i < 1000; i++ {
		s.Input([]byte("x"))
	}
	if len(s.rx) > rxFIFOLimit {
		t.Errorf("rx FIFO grew to %d", len(s.rx))
	}
}

func TestStreamTracking(t *testing.T) {
	var frames bytes.Buffer
	enc := wire.NewEncoder(&frames)
	enc.Encode(wire.Log{Text: "a"})
	enc.Encode(wire.Output{Stream: 1, Data: bytes.Repeat([]byte("z"), 5000)})
	enc.Encode(wire.GuestExit{Code: -2})
	all := frames.Bytes()
	for _, chunk := range []int{1, 3, 31, 32, 33, 4096, len(all)} {
		var out bytes.Buffer
		s := NewStream(&out)
		for i := 0; i < len(all); i += chunk {
			s.Write(all[i:min(i+chunk, len(all))])
			if s.AtBoundary() != (i+chunk >= len(all) || isBoundary(all, i+chunk)) {
				t.Fatalf("chunk %d: boundary wrong at %d", chunk, i+chunk)
			}
		}
		if !bytes.Equal(out.Bytes(), all) {
			t.Fatalf("chunk %d: bytes changed", chunk)
		}
		code, ok := s.GuestExit()
		if !ok || code != -2 {
			t.Fatalf("chunk %d: guest exit %d %v", chunk, code, ok)
		}
		if _, n := s.Counts(); n != 3 {
			t.Fatalf("chunk %d: %d frames", chunk, n)
		}
	}
	// garbage before and a corrupted exit frame: no exit code, resync
	var out bytes.Buffer
	s := NewStream(&out)
	bad := append([]byte("KTSgarbage KT"), all...)
	bad[len(bad)-1] ^= 0xFF // break the exit frame's CRC
	s.Write(bad)
	if _, ok := s.GuestExit(); ok {
		t.Fatal("corrupted exit frame accepted")
	}
	if _, n := s.Counts(); n != 2 {
		t.Fatalf("resync found %d frames, want the 2 intact ones", n)
	}
	s.CloseGuest()
	if out.Len() != len(bad) {
		t.Fatalf("%d bytes out for %d in: the relay must keep offsets", out.Len(), len(bad))
	}
}

// TestStreamRefusesForgedHostFrames: a guest that writes host frames
// (vm_start naming its own control FIFO, a monitor sample, a frame with
// the host flag) gets none of them through as a frame, not even one
// hidden in the payload of a damaged frame; offsets are kept and the
// VMM's own host frames still decode.
func TestStreamRefusesForgedHostFrames(t *testing.T) {
	var g bytes.Buffer
	genc := wire.NewEncoder(&g)
	genc.Encode(wire.Log{Text: "before"})
	forger := wire.NewEncoder(&g, wire.WithFlags(wire.FlagHost))
	forger.Encode(wire.VMStart{VMM: "evil", PID: 1, VCPUs: 64, ControlFIFO: "/tmp/evil"})
	wire.NewEncoder(&g).Encode(wire.MonitorSample{Seq: 1})
	// A damaged output frame whose payload holds a forged vm_exit.
	var inner bytes.Buffer
	wire.NewEncoder(&inner, wire.WithFlags(wire.FlagHost)).Encode(wire.VMExit{Reason: "poweroff"})
	dmg := wire.AppendFrame(nil, wire.Header{Type: wire.TypeOutput}, append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, inner.Bytes()...))
	dmg[wire.HeaderSize] = 2 // payload change after the CRC: CRC mismatch
	g.Write(dmg)
	genc.Encode(wire.Log{Text: "after"})
	all := g.Bytes()
	for _, chunk := range []int{1, 13, len(all)} {
		var out bytes.Buffer
		s := NewStream(&out)
		s.WriteHost(wire.VMStart{VMM: "ktstr-boot", PID: 42, VCPUs: 2})
		start := out.Len()
		for i := 0; i < len(all); i += chunk {
			s.Write(all[i:min(i+chunk, len(all))])
		}
		s.CloseGuest()
		if out.Len()-start != len(all) {
			t.Fatalf("chunk %d: %d bytes out for %d in", chunk, out.Len()-start, len(all))
		}
		s.WriteHost(wire.VMExit{Reason: "guest_exit"})
		d := wire.NewDecoder(bytes.NewReader(out.Bytes()))
		var got []string
		for {
			f, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				continue
			}
			got = append(got, fmt.Sprintf("%s/%d", f.Type, f.Flags))
		}
		want := "[vm_start/1 log/0 log/0 vm_exit/1]"
		if fmt.Sprint(got) != want {
			t.Fatalf("chunk %d: frames %v, want %s", chunk, got, want)
		}
		if s.Refused() != 3 {
			t.Errorf("chunk %d: %d refused frames, want 3 (vm_start, monitor_sample, the hidden vm_exit)", chunk, s.Refused())
		}
	}
}

func isBoundary(all []byte, off int) bool {
	d := wire.NewDecoder(bytes.NewReader(all))
	for {
		f, err := d.Next()
		if err != nil {
			return false
		}
		end := int(f.Offset) + wire.HeaderSize + len(f.Payload)
		if end == off {
			return true
		}
		if end > off {
			return false
		}
	}
}

func FuzzStream(f *testing.F) {
	var b bytes.Buffer
	wire.NewEncoder(&b).Encode(wire.GuestExit{Code: 1})
	f.Add(b.Bytes())
	f.Add([]byte("KTSRKTSRKTSR"))
	var h bytes.Buffer
	wire.NewEncoder(&h, wire.WithFlags(wire.FlagHost)).Encode(wire.VMStart{VMM: "x"})
	f.Add(append([]byte("KT"), h.Bytes()...))
	f.Fuzz(func(t *testing.T, p []byte) {
		// What the relay must write: the guest frames a GuestOnly decoder
		// accepts, unchanged; every other byte with 'K' defused.
		want := bytes.Clone(p)
		inFrame := make([]bool, len(p))
		var offs []int64
		d := wire.NewDecoder(bytes.NewReader(p), wire.GuestOnly())
		for {
			f, err := d.Next()
			if err == io.EOF {
				break
			}
			if err == nil {
				offs = append(offs, f.Offset)
				for i := range f.Raw {
					inFrame[int(f.Offset)+i] = true
				}
			}
		}
		for i, c := range want {
			if c == 'K' && !inFrame[i] {
				want[i] = wire.Defused
			}
		}
		for _, chunk := range []int{len(p) + 1, 5} {
			var out bytes.Buffer
			s := NewStream(&out)
			for i := 0; i < len(p); i += chunk {
				s.Write(p[i:min(i+chunk, len(p))])
			}
			s.CloseGuest()
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("chunk %d: relay wrote\n%q\nwant\n%q", chunk, out.Bytes(), want)
			}
			// Any reader finds exactly those frames, and no host frame.
			var got []int64
			rd := wire.NewDecoder(bytes.NewReader(out.Bytes()))
			for {
				f, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err == nil {
					if f.Flags&wire.FlagHost != 0 || f.Type.IsHost() {
						t.Fatalf("a reader found a host frame at %d in the relayed guest stream", f.Offset)
					}
					got = append(got, f.Offset)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(offs) {
				t.Fatalf("reader found frames at %v, relay passed %v", got, offs)
			}
		}
	})
}

// ring is a test driver's view of one split virtqueue in guest memory.
type ring struct {
	m                 *guestmem.Memory
	desc, avail, used uint64
	num               uint16
	next              uint16
}

func (r *ring) addChain(bufs ...[3]uint64) { // {addr, len, flags}
	head := r.next
	for i, b := range bufs {
		idx := r.next
		r.next++
		d, _ := r.m.Slice(r.desc+16*uint64(idx%r.num), 16)
		binary.LittleEndian.PutUint64(d[0:], b[0])
		binary.LittleEndian.PutUint32(d[8:], uint32(b[1]))
		flags := uint16(b[2])
		if i < len(bufs)-1 {
			flags |= descFNext
		}
		binary.LittleEndian.PutUint16(d[12:], flags)
		binary.LittleEndian.PutUint16(d[14:], (idx+1)%r.num)
	}
	ai, _ := r.m.U16(r.avail + 2)
	e, _ := r.m.Slice(r.avail+4+2*uint64(ai%r.num), 2)
	binary.LittleEndian.PutUint16(e, head%r.num)
	w, _ := r.m.Slice(r.avail+2, 2)
	binary.LittleEndian.PutUint16(w, ai+1)
}

// usedIdx reads the used index the way a driver on another CPU would:
// one atomic load of the flags+idx word the device publishes atomically.
func (r *ring) usedIdx() uint16 {
	w, _ := r.m.Slice(r.used, 4)
	return uint16(atomic.LoadUint32((*uint32)(unsafe.Pointer(&w[0]))) >> 16)
}

func (r *ring) usedElem(i uint16) (id, n uint32) {
	e, _ := r.m.Slice(r.used+4+8*uint64(i%r.num), 8)
	return binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])
}

// driver sets up the console through the MMIO registers the way Linux's
// virtio_mmio + virtio_console do.
type driver struct {
	t     *testing.T
	tr    *mmioTransport
	m     *guestmem.Memory
	rings map[int]*ring
}

func (d *driver) w(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	d.tr.Write(off, b[:])
}

func (d *driver) r(off uint64) uint32 {
	var b [4]byte
	d.tr.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func newDriver(t *testing.T, c *virtioConsole, m *guestmem.Memory) *driver {
	d := &driver{t: t, tr: c.Transport(), m: m, rings: map[int]*ring{}}
	if d.r(mmioMagic) != mmioMagicValue || d.r(mmioVersion) != 2 || d.r(mmioDeviceID) != virtioIDConsole {
		t.Fatal("bad device identity")
	}
	d.w(mmioStatus, 1|2)
	d.w(mmioDevFeaturesSel, 1)
	if d.r(mmioDevFeatures)&1 == 0 {
		t.Fatal("VERSION_1 not offered")
	}
	d.w(mmioDevFeaturesSel, 0)
	if d.r(mmioDevFeatures)&consoleFMultiport == 0 {
		t.Fatal("MULTIPORT not offered")
	}
	d.w(mmioDrvFeaturesSel, 1)
	d.w(mmioDrvFeatures, 1)
	d.w(mmioDrvFeaturesSel, 0)
	d.w(mmioDrvFeatures, consoleFMultiport)
	d.w(mmioStatus, 1|2|8)
	for q := 0; q < consoleQueues; q++ {
		base := uint64(0x100000 + q*0x4000)
		r := &ring{m: m, desc: base, avail: base + 0x1000, used: base + 0x2000, num: 16}
		d.rings[q] = r
		d.w(mmioQueueSel, uint32(q))
		if d.r(mmioQueueNumMax) != QueueMaxSize {
			t.Fatal("QueueNumMax")
		}
		d.w(mmioQueueNum, 16)
		d.w(mmioQueueDescLo, uint32(r.desc))
		d.w(mmioQueueAvailLo, uint32(r.avail))
		d.w(mmioQueueUsedLo, uint32(r.used))
		d.w(mmioQueueReady, 1)
		if d.r(mmioQueueReady) != 1 {
			t.Fatalf("queue %d not ready: %s", q, d.tr.Broken())
		}
	}
	d.w(mmioStatus, 1|2|8|4)
	return d
}

func ctrl(id uint32, ev, val uint16) []byte { return ctrlMsg(id, ev, val, "") }

func TestConsoleMultiportHandshake(t *testing.T) {
	m := newMemoryFromBytes(make([]byte, 32<<20))
	var hvc, stream bytes.Buffer
	irqs := 0
	c := newVirtioConsole(m, &hvc, &stream, func() { irqs++ })
	d := newDriver(t, c, m)
	// the driver posts receive buffers on c_ivq, then DEVICE_READY on c_ovq
	rx := d.rings[qCtrlRx]
	for i := 0; i < 8; i++ {
		rx.addChain([3]uint64{uint64(0x200000 + i*0x100), 0x100, descFWrite})
	}
	d.w(mmioQueueNotify, qCtrlRx)
	tx := d.rings[qCtrlTx]
	m.Write(0x300000, ctrl(0, ctrlDeviceReady, 1))
	tx.addChain([3]uint64{0x300000, 8, 0})
	d.w(mmioQueueNotify, qCtrlTx)
	m.Write(0x300010, ctrl(0, ctrlPortReady, 1))
	m.Write(0x300020, ctrl(1, ctrlPortReady, 1))
	tx.addChain([3]uint64{0x300010, 8, 0})
	tx.addChain([3]uint64{0x300020, 8, 0})
	d.w(mmioQueueNotify, qCtrlTx)
	if tx.usedIdx() != 3 {
		t.Fatalf("control tx used %d", tx.usedIdx())
	}
	var got []string
	for i := uint16(0); i < rx.usedIdx(); i++ {
		id, n := rx.usedElem(i)
		b, _ := m.Slice(uint64(0x200000+id*0x100), uint64(n))
		s := fmt.Sprintf("%d/%d/%d", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]))
		if len(b) > 8 {
			s += "/" + string(b[8:])
		}
		got = append(got, s)
	}
	want := "0/1/0 1/1/0 0/4/1 0/6/1 1/7/0/ktstr 1/6/1"
	if strings.Join(got, " ") != want {
		t.Fatalf("control messages %q, want %q", strings.Join(got, " "), want)
	}
	if irqs == 0 || d.r(mmioIntStatus)&1 == 0 {
		t.Error("no used-buffer interrupt")
	}
	d.w(mmioIntACK, 1)
	if d.r(mmioIntStatus) != 0 {
		t.Error("interrupt not acknowledged")
	}
	// port 0 output goes to the console synchronously
	m.Write(0x400000, []byte("hvc says hi\n"))
	d.rings[qTx0].addChain([3]uint64{0x400000, 12, 0})
	d.w(mmioQueueNotify, qTx0)
	if hvc.String() != "hvc says hi\n" {
		t.Errorf("hvc %q", hvc.String())
	}
	// port 1: the worker writes, then completes the chain
	c.Start()
	defer c.Stop()
	m.Write(0x500000, []byte("stream-"))
	m.Write(0x500100, []byte("bytes"))
	d.rings[qTx1].addChain([3]uint64{0x500000, 7, 0}, [3]uint64{0x500100, 5, 0})
	d.w(mmioQueueNotify, qTx1)
	for i := 0; d.rings[qTx1].usedIdx() != 1; i++ {
		if i > 1e7 {
			t.Fatal("stream chain never completed")
		}
	}
	c.Stop()
	if stream.String() != "stream-bytes" {
		t.Errorf("stream %q", stream.String())
	}
	// reset clears everything
	d.w(mmioStatus, 0)
	if d.r(mmioStatus) != 0 || d.r(mmioQueueReady) != 0 {
		t.Error("reset incomplete")
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	got     bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.got.Write(p)
}

// TestStreamBackpressure: while stdout blocks, the guest's buffers stay
// outstanding (the guest blocks) and nothing is copied aside.
func TestStreamBackpressure(t *testing.T) {
	m := newMemoryFromBytes(make([]byte, 32<<20))
	bw := &blockingWriter{release: make(chan struct{})}
	c := newVirtioConsole(m, &bytes.Buffer{}, bw, nil)
	d := newDriver(t, c, m)
	c.Start()
	r := d.rings[qTx1]
	for i := 0; i < 16; i++ {
		m.Write(uint64(0x600000+i*16), []byte(fmt.Sprintf("chunk %02d|", i)))
		r.addChain([3]uint64{uint64(0x600000 + i*16), 9, 0})
	}
	d.w(mmioQueueNotify, qTx1)
	for i := 0; i < 1000; i++ {
		if r.usedIdx() != 0 {
			t.Fatal("a chain completed while stdout was blocked")
		}
	}
	close(bw.release)
	for i := 0; r.usedIdx() != 16; i++ {
		if i > 1e8 {
			t.Fatal("chains did not complete once stdout drained")
		}
	}
	c.Stop()
	var want strings.Builder
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&want, "chunk %02d|", i)
	}
	if bw.got.String() != want.String() {
		t.Fatalf("stream %q", bw.got.String())
	}
}

// FuzzVirtqueue feeds arbitrary guest memory (rings and descriptors) to
// the queue walker: it must never panic, hang or return a buffer outside
// guest memory.
func FuzzVirtqueue(f *testing.F) {
	f.Add(uint16(4), uint64(0), uint64(0x100), uint64(0x200), []byte{0, 0, 1, 0, 0, 0})
	f.Add(uint16(8), uint64(0x1000), uint64(0x1100), uint64(0x1200), bytes.Repeat([]byte{0xFF}, 64))
	f.Fuzz(func(t *testing.T, num uint16, desc, avail, used uint64, seed []byte) {
		mem := make([]byte, 64<<10)
		for i := 0; i < len(mem) && len(seed) > 0; i++ {
			mem[i] = seed[i%len(seed)]
		}
		m := newMemoryFromBytes(mem)
		q := virtq{Num: num, Desc: desc, Avail: avail, Used: used}
		if q.Validate(m) != nil {
			return
		}
		q.Ready = true
		for i := 0; i < 3*int(num)+4; i++ {
			c, ok, err := q.Pop(m)
			if err != nil || !ok {
				return
			}
			if len(c.Bufs) > int(num) {
				t.Fatalf("chain of %d buffers in a queue of %d", len(c.Bufs), num)
			}
			for _, b := range c.Bufs {
				_ = b.Data[len(b.Data):] // in bounds by construction
			}
			if err := q.Push(m, c.Head, 1); err != nil {
				return
			}
		}
	})
}

// FuzzMMIO drives the transport with arbitrary register accesses over
// arbitrary memory: no panics, no hangs.
func FuzzMMIO(f *testing.F) {
	f.Add([]byte{0x70, 0, 3, 0x30, 0, 5, 0x38, 0, 4, 0x44, 0, 1, 0x50, 0, 5})
	f.Fuzz(func(t *testing.T, ops []byte) {
		mem := make([]byte, 1<<20)
		for i := range mem {
			mem[i] = byte(i * 7)
		}
		m := newMemoryFromBytes(mem)
		c := newVirtioConsole(m, &bytes.Buffer{}, &bytes.Buffer{}, nil)
		tr := c.Transport()
		for i := 0; i+2 < len(ops); i += 3 {
			off := uint64(ops[i]) << 2 & 0x1FF
			v := uint32(ops[i+2]) * 0x1001
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], v)
			if ops[i+1]&1 == 0 {
				tr.Write(off, b[:])
			} else {
				tr.Read(off, b[:ops[i+1]%5])
			}
			if off == mmioQueueNotify {
				for c.streamOne() {
				}
			}
		}
	})
}
