package vmm

import (
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
)

// Guest-physical layout.
const (
	// MMIOHoleStart is where the 32-bit MMIO hole begins: RAM below it is
	// mapped at its own address, the rest above 4 GiB.
	MMIOHoleStart = 0xC000_0000
	// HighMemStart is where RAM resumes above the hole.
	HighMemStart = 1 << 32

	VirtioMMIOBase = 0xD000_0000
	VirtioMMIOSize = 0x1000
	VirtioIRQ      = 5
	IOAPICAddr     = 0xFEC0_0000
	LAPICAddr      = 0xFEE0_0000
	tssAddr        = 0xFFFB_D000
	identityMap    = 0xFFFB_C000

	// MinMemory is the least RAM ktstr-boot accepts.
	MinMemory = 32 << 20
)

// Layout splits size bytes of RAM around the MMIO hole: below it at
// its own address, the rest from 4 GiB (pkg/guestmem owns the regions).
func Layout(size uint64) []guestmem.Region { return guestmem.SplitLayout(size, MMIOHoleStart) }

// newMemory creates guest RAM of size bytes: a memfd mapped shared with
// MAP_NORESERVE (pages are allocated when the guest touches them), laid
// out by Layout.
func newMemory(size uint64) (*guestmem.Memory, error) {
	if size < MinMemory {
		return nil, fmt.Errorf("guest memory %d bytes is below the %d MiB minimum", size, MinMemory>>20)
	}
	return guestmem.NewMemfd("ktstr-guest-ram", size, Layout(size))
}

// newMemoryFromBytes wraps a plain buffer (tests, fuzzing).
func newMemoryFromBytes(b []byte) *guestmem.Memory {
	m, err := guestmem.New(b, Layout(uint64(len(b))))
	if err != nil {
		panic(err) // Layout always fits the buffer it was made for
	}
	return m
}

// E820 entry types.
const (
	E820RAM      = 1
	E820Reserved = 2
)

// E820Entry is one entry of the BIOS memory map.
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// Fixed low-memory addresses of the boot layout.
const (
	gdtAddr      = 0x500
	idtAddr      = 0x520
	zeroPageAddr = 0x7000
	stackTop     = 0x8ff0
	pml4Addr     = 0x9000
	pdptAddr     = 0xA000
	pdAddr       = 0xB000 // four page directories, 0xB000..0xEFFF
	cmdlineAddr  = 0x20000
	mpConfigAddr = 0x9E000 // MP config table: room for 254 processors
	mptableAddr  = 0x9FC00 // MP floating pointer: the last KiB of base memory, where Linux scans
	ebdaEnd      = 0xA0000
	kernelAddr   = 0x100000
)

// e820Map is the memory map announced to the guest: base memory below
// the MP table, the MP table's 8 KiB reserved, RAM from 1 MiB to the hole
// and the rest above 4 GiB.
func e820Map(regions []guestmem.Region) []E820Entry {
	es := []E820Entry{
		{Addr: 0, Size: mpConfigAddr, Type: E820RAM},
		{Addr: mpConfigAddr, Size: ebdaEnd - mpConfigAddr, Type: E820Reserved},
	}
	for _, r := range regions {
		start, end := r.GPA, r.GPA+r.Size
		if start < kernelAddr {
			start = kernelAddr
		}
		if end > start {
			es = append(es, E820Entry{Addr: start, Size: end - start, Type: E820RAM})
		}
	}
	return es
}
