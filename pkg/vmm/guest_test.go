package vmm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// asm assembles tiny 64-bit guests by hand. Each guest is a few dozen
// instructions: this machine's /dev/kvm may be an emulator running about
// a million instructions a second.
type asm struct{ b []byte }

func (a *asm) emit(b ...byte) *asm { a.b = append(a.b, b...); return a }
func (a *asm) le16(v uint16) *asm  { return a.emit(byte(v), byte(v>>8)) }
func (a *asm) le32(v uint32) *asm  { return a.emit(byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }

// outb port, v: mov dx, port; mov al, v; out dx, al
func (a *asm) outb(port uint16, v byte) *asm {
	return a.emit(0x66, 0xBA).le16(port).emit(0xB0, v, 0xEE)
}

// serial prints s on COM1.
func (a *asm) serial(s string) *asm {
	for i := 0; i < len(s); i++ {
		a.outb(COM1Base, s[i])
	}
	return a
}

// movEDI loads edi (zero-extended into rdi).
func (a *asm) movEDI(v uint32) *asm { return a.emit(0xBF).le32(v) }

// store32 writes imm32 to [rdi+off].
func (a *asm) store32(off, v uint32) *asm { return a.emit(0xC7, 0x87).le32(off).le32(v) }

// waitWord16 spins until the 16-bit word at addr equals v.
func (a *asm) waitWord16(addr uint32, v byte) *asm {
	return a.emit(0x0F, 0xB7, 0x04, 0x25).le32(addr). // movzx eax, word [addr]
								emit(0x66, 0x83, 0xF8, v). // cmp ax, v
								emit(0x75, 0xF2)           // jne back to movzx
}

func (a *asm) reset() *asm { return a.outb(i8042Command, i8042Reset).emit(0xF4, 0xEB, 0xFE) }

func needKVM(t *testing.T) {
	t.Helper()
	s, err := kvm.Open()
	if err != nil {
		t.Skipf("SKIP: tiny-guest tests need %s: %v", kvm.DevicePath, err)
	}
	s.Close()
}

func runGuest(t *testing.T, code []byte, timeout time.Duration) (Result, []byte, string) {
	t.Helper()
	var out, con bytes.Buffer
	res, err := Run(Config{GuestCode: code, VCPUs: 1, Memory: 64 << 20, Timeout: timeout, Stream: &out, Console: &con})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, out.Bytes(), con.String()
}

func decodeAll(t *testing.T, b []byte) []*wire.Frame {
	t.Helper()
	d := wire.NewDecoder(bytes.NewReader(b))
	var fs []*wire.Frame
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatalf("decode stdout: %v", err)
		}
		c := *f
		c.Payload = append([]byte(nil), f.Payload...)
		fs = append(fs, &c)
	}
}

func TestGuestSerialAndReset(t *testing.T) {
	needKVM(t)
	var a asm
	a.serial("hello from the guest\n").reset()
	res, out, con := runGuest(t, a.b, 20*time.Second)
	if res.Reason != ReasonReboot || res.ExitCode != ExitShutdown {
		t.Fatalf("result %+v, want reboot/%d", res, ExitShutdown)
	}
	if con != "hello from the guest\n" {
		t.Fatalf("console %q", con)
	}
	fs := decodeAll(t, out)
	if len(fs) != 2 || fs[0].Type != wire.TypeVMStart || fs[1].Type != wire.TypeVMExit {
		t.Fatalf("stdout frames %v", fs)
	}
	for _, f := range fs {
		if f.Flags&wire.FlagHost == 0 {
			t.Errorf("host frame %s lacks FlagHost", f.Type)
		}
	}
	m, err := wire.Unmarshal(fs[1].Type, fs[1].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if ve := m.(wire.VMExit); ve.Reason != ReasonReboot || ve.VCPUs != 1 || ve.WallNS == 0 {
		t.Fatalf("VMExit %+v", ve)
	}
}

func TestGuestTripleFault(t *testing.T) {
	needKVM(t)
	var a asm
	// jump to an unmapped address: #PF with an empty IDT is #GP, #DF, shutdown
	a.serial("x").emit(0x48, 0xB8, 0, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xE0)
	res, _, _ := runGuest(t, a.b, 20*time.Second)
	if res.Reason != ReasonTripleFault || res.ExitCode != ExitTripleFault {
		t.Fatalf("result %+v, want triple fault", res)
	}
}

func TestGuestTimeout(t *testing.T) {
	needKVM(t)
	var a asm
	a.emit(0xEB, 0xFE) // jmp $
	start := time.Now()
	res, out, _ := runGuest(t, a.b, 300*time.Millisecond)
	if res.Reason != ReasonTimeout || res.ExitCode != ExitTimeout {
		t.Fatalf("result %+v, want timeout", res)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stopping a spinning guest took %s", d)
	}
	if fs := decodeAll(t, out); len(fs) != 2 {
		t.Fatalf("%d frames, want VMStart and VMExit", len(fs))
	}
}

// TestGuestVirtioStream is a minimal virtio-mmio driver in guest code: it
// negotiates features, sets up port 1's transmit queue over rings the test
// pre-fills, kicks it, waits until the device has used every buffer, and
// resets the machine. The frames must reach stdout intact, between the
// host's VMStart and VMExit, and the guest-exit code must become ours.
// The "no-kick" case queues the buffers and resets at once, as a guest
// that writes its last frames and powers off does; "device-reset" also
// resets the virtio device first, as Linux does on its way to reboot: the
// VMM must still deliver what was queued.
func TestGuestVirtioStream(t *testing.T) {
	needKVM(t)
	for _, mode := range []string{"kick", "no-kick", "device-reset"} {
		t.Run(mode, func(t *testing.T) { testGuestVirtioStream(t, mode) })
	}
}

func testGuestVirtioStream(t *testing.T, mode string) {
	const (
		base   = GuestCodeAddr
		descT  = base + 0x1000
		availR = base + 0x1100
		usedR  = base + 0x1200
		data   = base + 0x2000
	)
	var frames []byte
	enc := wire.NewEncoder(writerFunc(func(p []byte) (int, error) { frames = append(frames, p...); return len(p), nil }))
	enc.Encode(wire.Log{Text: "first frame from the guest"})
	enc.Encode(wire.Phase{Phase: wire.PhaseInitStarted})
	enc.Encode(wire.GuestExit{Code: 7})

	var a asm
	a.serial("drv\n").movEDI(VirtioMMIOBase).
		store32(mmioStatus, 1|2).
		store32(mmioDrvFeaturesSel, 1).store32(mmioDrvFeatures, 1).
		store32(mmioDrvFeaturesSel, 0).store32(mmioDrvFeatures, consoleFMultiport).
		store32(mmioStatus, 1|2|8).
		store32(mmioQueueSel, qTx1).store32(mmioQueueNum, 4).
		store32(mmioQueueDescLo, descT).store32(mmioQueueDescHi, 0).
		store32(mmioQueueAvailLo, availR).store32(mmioQueueAvailHi, 0).
		store32(mmioQueueUsedLo, usedR).store32(mmioQueueUsedHi, 0).
		store32(mmioQueueReady, 1).
		store32(mmioStatus, 1|2|8|4)
	switch mode {
	case "kick":
		a.store32(mmioQueueNotify, qTx1).waitWord16(usedR+2, 3)
	case "device-reset":
		a.store32(mmioStatus, 0)
	}
	a.reset()
	if len(a.b) > 0x1000 {
		t.Fatalf("guest code %d bytes overlaps its rings", len(a.b))
	}
	img := make([]byte, 0x2000+len(frames))
	copy(img, a.b)
	copy(img[0x2000:], frames)
	// three descriptors, one per frame split in two to test chains:
	// frame i = desc 2i? keep it simple: one descriptor per frame,
	// the last frame as a two-descriptor chain.
	put := func(i int, addr uint64, n uint32, flags, next uint16) {
		d := img[0x1000+16*i:]
		binary.LittleEndian.PutUint64(d[0:], addr)
		binary.LittleEndian.PutUint32(d[8:], n)
		binary.LittleEndian.PutUint16(d[12:], flags)
		binary.LittleEndian.PutUint16(d[14:], next)
	}
	var offs []int
	d := wire.NewDecoder(bytes.NewReader(frames))
	for {
		f, err := d.Next()
		if err != nil {
			break
		}
		offs = append(offs, int(f.Offset))
	}
	offs = append(offs, len(frames))
	put(0, data+uint64(offs[0]), uint32(offs[1]-offs[0]), 0, 0)
	put(1, data+uint64(offs[1]), uint32(offs[2]-offs[1]), 0, 0)
	split := offs[2] + 10
	put(2, data+uint64(offs[2]), 10, descFNext, 3)
	put(3, data+uint64(split), uint32(offs[3]-split), 0, 0)
	av := img[0x1100:]
	binary.LittleEndian.PutUint16(av[2:], 3) // idx
	binary.LittleEndian.PutUint16(av[4:], 0)
	binary.LittleEndian.PutUint16(av[6:], 1)
	binary.LittleEndian.PutUint16(av[8:], 2)

	res, out, con := runGuest(t, img, 30*time.Second)
	if res.Reason != ReasonGuestExit || res.ExitCode != 7 {
		t.Fatalf("result %+v (console %q), want guest_exit with code 7", res, con)
	}
	fs := decodeAll(t, out)
	if len(fs) != 5 || fs[0].Type != wire.TypeVMStart || fs[4].Type != wire.TypeVMExit {
		t.Fatalf("frames %v", fs)
	}
	if !bytes.Contains(out, frames) {
		t.Fatal("guest frames did not reach stdout byte for byte")
	}
	if res.GuestFrames != 3 || res.GuestBytes != uint64(len(frames)) {
		t.Fatalf("counted %d frames / %d bytes, want 3 / %d", res.GuestFrames, res.GuestBytes, len(frames))
	}
	if !strings.Contains(con, "drv") {
		t.Fatalf("console %q", con)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestGuestSignalAndControlFIFO(t *testing.T) {
	needKVM(t)
	spin := []byte{0xEB, 0xFE} // jmp $
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGINT
	var out bytes.Buffer
	res, err := Run(Config{GuestCode: spin, VCPUs: 1, Memory: 64 << 20, Timeout: time.Minute, Stream: &out, Console: io.Discard, Signals: sigs})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != ReasonSignal || res.ExitCode != 130 {
		t.Fatalf("SIGINT: %+v, want signal/130", res)
	}
	if fs := decodeAll(t, out.Bytes()); len(fs) != 2 || fs[1].Type != wire.TypeVMExit {
		t.Fatalf("SIGINT: stream not flushed with a VMExit frame: %v", fs)
	}

	fifo := filepath.Join(t.TempDir(), "ctl")
	go func() {
		for i := 0; i < 500; i++ {
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				// An over-long line is skipped; the commands after it still work.
				f.WriteString("bogus\n" + strings.Repeat("x", 1000) + "\nsysrq t\nregs\n")
				// regs is answered by the vCPU thread; stop after it.
				time.Sleep(300 * time.Millisecond)
				f.WriteString("stop\n")
				f.Close()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var con lockedBuffer
	res, err = Run(Config{GuestCode: spin, VCPUs: 1, Memory: 64 << 20, Timeout: time.Minute, Stream: io.Discard, Console: &con, ControlFIFO: fifo})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != ReasonStopped || res.ExitCode != 143 {
		t.Fatalf("control stop: %+v", res)
	}
	if !strings.Contains(con.String(), `unknown command "bogus"`) {
		t.Errorf("console %q lacks the unknown-command note", con.String())
	}
	if !strings.Contains(con.String(), "line longer than 256 bytes ignored") {
		t.Errorf("console %q lacks the over-long-line note", con.String())
	}
	// The spinning vCPU is found at its jmp $, in ring 0, and keeps
	// running after the dump (the stop came later).
	if want := fmt.Sprintf("ktstr-boot: regs: vCPU 0: rip=%#016x ", GuestCodeAddr); !strings.Contains(con.String(), want) {
		t.Errorf("console %q lacks %q", con.String(), want)
	}
	if !strings.Contains(con.String(), "cpl=0 ") {
		t.Errorf("console %q: regs line without cpl=0", con.String())
	}
	if _, err := os.Stat(fifo); !os.IsNotExist(err) {
		t.Errorf("FIFO left behind: %v", err)
	}
}

// TestGuestSixGiB runs a guest with 6 GiB: RAM above 4 GiB is a second
// memslot, and the virtio window inside the hole still answers.
func TestGuestSixGiB(t *testing.T) {
	needKVM(t)
	var a asm
	// read the virtio magic (mov eax, [rdi]) and print it if it matches
	a.movEDI(VirtioMMIOBase).emit(0x8B, 0x07). // mov eax, [rdi]
							emit(0x3D).le32(mmioMagicValue). // cmp eax, magic
							emit(0x75, 13)                   // jne over the print
	a.serial("magic\n").reset()
	var con bytes.Buffer
	res, err := Run(Config{GuestCode: a.b, VCPUs: 1, Memory: 6 << 30, Timeout: 20 * time.Second, Stream: io.Discard, Console: &con})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != ReasonReboot || con.String() != "magic\n" {
		t.Fatalf("result %+v, console %q", res, con.String())
	}
}
