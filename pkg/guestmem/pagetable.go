package guestmem

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// x86_64 page-table entry bits.
const (
	ptePresent = 1 << 0
	ptePS      = 1 << 7
	// pteAddrMask keeps bits 12..51: the physical frame address of the
	// next table or of the page.
	pteAddrMask = 0x000f_ffff_ffff_f000
	pageSize    = 4096
)

// ErrNotPresent is wrapped when a virtual address has no mapping.
var ErrNotPresent = errors.New("virtual address not mapped")

// PageTable walks x86_64 4-level or 5-level page tables rooted at a
// guest-physical address (what CR3 holds, without its flag bits).
type PageTable struct {
	mem    *Memory
	root   uint64
	levels int
}

// NewPageTable returns a walker over the tables at root with 4 or 5 levels.
func NewPageTable(mem *Memory, root uint64, levels int) (*PageTable, error) {
	if levels != 4 && levels != 5 {
		return nil, fmt.Errorf("page-table levels must be 4 or 5, not %d", levels)
	}
	return &PageTable{mem: mem, root: root & pteAddrMask, levels: levels}, nil
}

// Levels is 4 or 5.
func (p *PageTable) Levels() int { return p.levels }

// Translate returns the guest-physical address va maps to, and the size of
// the page that maps it (4 KiB, 2 MiB or 1 GiB).
func (p *PageTable) Translate(va uint64) (gpa, size uint64, err error) {
	// Canonical check: bits above the top level's index must copy the
	// top index bit.
	vaBits := uint(48)
	if p.levels == 5 {
		vaBits = 57
	}
	top := int64(va) >> (vaBits - 1)
	if top != 0 && top != -1 {
		return 0, 0, fmt.Errorf("virtual address %#x is not canonical for %d-level paging: %w", va, p.levels, ErrNotPresent)
	}
	table := p.root
	for level := p.levels; level >= 1; level-- {
		shift := uint(12 + 9*(level-1))
		idx := (va >> shift) & 0x1ff
		raw, err := p.mem.Slice(table+idx*8, 8)
		if err != nil {
			return 0, 0, fmt.Errorf("level-%d table entry for %#x: %w", level, va, err)
		}
		e := binary.LittleEndian.Uint64(raw)
		if e&ptePresent == 0 {
			return 0, 0, fmt.Errorf("level-%d entry for %#x not present: %w", level, va, ErrNotPresent)
		}
		if level == 1 || (e&ptePS != 0 && (level == 2 || level == 3)) {
			size = uint64(1) << shift
			base := e & pteAddrMask &^ (size - 1)
			return base | (va & (size - 1)), size, nil
		}
		table = e & pteAddrMask
	}
	panic("unreachable")
}

// Read copies len(dst) bytes from guest-virtual va, translating each page.
func (p *PageTable) Read(va uint64, dst []byte) error {
	for len(dst) > 0 {
		gpa, size, err := p.Translate(va)
		if err != nil {
			return err
		}
		n := min(uint64(len(dst)), size-(va&(size-1)))
		if err := p.mem.Read(gpa, dst[:n]); err != nil {
			return fmt.Errorf("virtual address %#x: %w", va, err)
		}
		dst = dst[n:]
		va += n
	}
	return nil
}
