package vmm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// Setup header offsets (Documentation/arch/x86/boot.rst, "The real-mode
// kernel header"), relative to the start of the bzImage file and of the
// zero page alike.
const (
	hdrSetupSects      = 0x1F1
	hdrSysSize         = 0x1F4
	hdrBootFlag        = 0x1FE
	hdrJump            = 0x200
	hdrMagic           = 0x202
	hdrVersion         = 0x206
	hdrTypeOfLoader    = 0x210
	hdrLoadFlags       = 0x211
	hdrRamdiskImage    = 0x218
	hdrRamdiskSize     = 0x21C
	hdrHeapEndPtr      = 0x224
	hdrCmdLinePtr      = 0x228
	hdrInitrdAddrMax   = 0x22C
	hdrKernelAlignment = 0x230
	hdrRelocatable     = 0x234
	hdrXLoadFlags      = 0x236
	hdrCmdlineSize     = 0x238
	hdrPayloadOffset   = 0x248
	hdrPayloadLength   = 0x24C
	hdrPrefAddress     = 0x258
	hdrInitSize        = 0x260

	// zero-page fields outside the setup header
	bpExtRamdiskImage = 0x0C0
	bpExtRamdiskSize  = 0x0C4
	bpExtCmdLinePtr   = 0x0C8
	bpE820Entries     = 0x1E8
	bpE820Table       = 0x2D0
	bpE820Max         = 128
	zeroPageSize      = 0x1000

	loadedHigh    = 0x01
	canUseHeap    = 0x80
	xlfKernel64   = 0x01
	minProtocol   = 0x020C // 2.12: xloadflags, 64-bit entry
	entry64Offset = 0x200  // startup_64 relative to the protected-mode kernel
)

// Kernel is a validated bzImage.
type Kernel struct {
	Protocol      uint16
	SetupSects    int
	LoadFlags     uint8
	XLoadFlags    uint16
	InitrdAddrMax uint32
	CmdlineSize   uint32
	InitSize      uint32
	// SysSize is the protected-mode kernel's size in bytes (the header's
	// syssize, in 16-byte units, times 16).
	SysSize uint64
	// Header is the setup header (file bytes 0x1F1 up to its end), copied
	// into the zero page.
	Header []byte
	// ImageSize is the length of the protected-mode kernel: the file
	// after the setup sectors, loaded at 1 MiB.
	ImageSize uint64

	// The protected-mode kernel is bytes [imageOff, imageOff+ImageSize)
	// of src, read straight into guest RAM when the guest is built
	// (loadImage): never held on the heap.
	src      io.ReaderAt
	imageOff int64
	closer   io.Closer // the file OpenKernel opened
}

// setupRead is how much of a bzImage parseBzImageAt reads: the boot
// sector and the setup header, whose end (0x202 + the jump's offset) is
// at most 0x301.
const setupRead = 0x400

// loadImage reads the protected-mode kernel into guest RAM at 1 MiB.
func (k *Kernel) loadImage(m *guestmem.Memory) error {
	return m.LoadFrom(kernelAddr, k.src, k.imageOff, k.ImageSize)
}

// NotBzImageError says why a file is not a loadable bzImage.
type NotBzImageError struct{ Reason string }

func (e *NotBzImageError) Error() string {
	return "not a loadable x86_64 bzImage: " + e.Reason
}

// parseBzImage validates b as a bzImage that supports the 64-bit boot
// protocol (2.12 or later with XLF_KERNEL_64) and splits it. Every size the
// header gives must agree with the file: setup_sects and syssize (the
// setup code and the protected-mode kernel) must lie within it, the
// compressed payload (payload_offset, payload_length) within the
// protected-mode kernel, and init_size must cover the kernel and fit below
// the MMIO hole; a truncated file or a bogus size is refused here rather
// than loaded into a guest that then triple-faults or hangs.
func parseBzImage(b []byte) (*Kernel, error) {
	return parseBzImageAt(bytes.NewReader(b), int64(len(b)))
}

// parseBzImageAt is parseBzImage for the size bytes of r: it reads only
// the first setupRead bytes (the setup header), checks every size against
// size, and leaves the protected-mode kernel in r, to be read straight
// into guest RAM when the guest is built. r must stay readable, and
// unchanged, until then.
func parseBzImageAt(r io.ReaderAt, size int64) (*Kernel, error) {
	bad := func(f string, a ...any) (*Kernel, error) {
		return nil, &NotBzImageError{fmt.Sprintf(f, a...)}
	}
	if size < hdrInitSize+4 {
		return bad("%d bytes is too short for a setup header", size)
	}
	b := make([]byte, min(size, setupRead))
	if n, err := r.ReadAt(b, 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read the bzImage setup header: %w", err)
	}
	if binary.LittleEndian.Uint16(b[hdrBootFlag:]) != 0xAA55 {
		return bad("no 0xAA55 boot flag at 0x1FE (is this a vmlinux ELF or a compressed file?)")
	}
	if string(b[hdrMagic:hdrMagic+4]) != "HdrS" {
		return bad("no \"HdrS\" setup header magic at 0x202")
	}
	k := &Kernel{
		Protocol:      binary.LittleEndian.Uint16(b[hdrVersion:]),
		SetupSects:    int(b[hdrSetupSects]),
		LoadFlags:     b[hdrLoadFlags],
		XLoadFlags:    binary.LittleEndian.Uint16(b[hdrXLoadFlags:]),
		InitrdAddrMax: binary.LittleEndian.Uint32(b[hdrInitrdAddrMax:]),
		CmdlineSize:   binary.LittleEndian.Uint32(b[hdrCmdlineSize:]),
		InitSize:      binary.LittleEndian.Uint32(b[hdrInitSize:]),
	}
	if k.Protocol < minProtocol {
		return bad("boot protocol %d.%02d, need 2.12 or later", k.Protocol>>8, k.Protocol&0xFF)
	}
	if k.LoadFlags&loadedHigh == 0 {
		return bad("loadflags lack LOADED_HIGH (a zImage, not a bzImage)")
	}
	if k.XLoadFlags&xlfKernel64 == 0 {
		return bad("xloadflags lack XLF_KERNEL_64 (no 64-bit entry point)")
	}
	if k.SetupSects == 0 {
		k.SetupSects = 4
	}
	hdrEnd := hdrJump + 2 + int(b[hdrJump+1])
	if hdrEnd < hdrInitSize+4 || hdrEnd > len(b) { // len(b) is min(size, setupRead) > the largest hdrEnd
		return bad("setup header length %d is implausible", hdrEnd-hdrSetupSects)
	}
	off := int64(k.SetupSects+1) * 512
	if off >= size {
		return bad("setup sectors (%d) run past the end of the file", k.SetupSects)
	}
	k.Header = bytes.Clone(b[hdrSetupSects:hdrEnd])
	k.src, k.imageOff, k.ImageSize = r, off, uint64(size-off)
	k.SysSize = uint64(binary.LittleEndian.Uint32(b[hdrSysSize:])) * 16
	if k.SysSize == 0 {
		return bad("syssize is 0 (no protected-mode kernel)")
	}
	if k.SysSize > k.ImageSize {
		return bad("truncated or corrupt: the header's syssize says the kernel after the %d setup sectors is %d bytes, the file holds %d", k.SetupSects, k.SysSize, k.ImageSize)
	}
	po := uint64(binary.LittleEndian.Uint32(b[hdrPayloadOffset:]))
	pl := uint64(binary.LittleEndian.Uint32(b[hdrPayloadLength:]))
	if pl == 0 || po+pl > k.SysSize {
		return bad("truncated or corrupt: the compressed kernel (payload_offset %d, payload_length %d) does not lie within the %d-byte protected-mode kernel", po, pl, k.SysSize)
	}
	if k.InitSize == 0 {
		return bad("init_size is 0")
	}
	if uint64(k.InitSize) < k.SysSize {
		return bad("corrupt: init_size %d is smaller than the %d-byte kernel it must hold", k.InitSize, k.SysSize)
	}
	if uint64(k.InitSize) > MMIOHoleStart-kernelAddr {
		return bad("corrupt: init_size %d MiB cannot fit below the %d MiB MMIO hole", k.InitSize>>20, MMIOHoleStart>>20)
	}
	if k.CmdlineSize == 0 {
		k.CmdlineSize = 255
	}
	return k, nil
}
