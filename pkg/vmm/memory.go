package vmm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
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

// Region is one guest-physical RAM range backed by the memory file at Offset.
type Region struct {
	GPA    uint64
	Size   uint64
	Offset uint64
}

// Layout splits size bytes of RAM around the MMIO hole.
func Layout(size uint64) []Region {
	low := min(size, MMIOHoleStart)
	rs := []Region{{GPA: 0, Size: low, Offset: 0}}
	if size > low {
		rs = append(rs, Region{GPA: HighMemStart, Size: size - low, Offset: low})
	}
	return rs
}

// Memory is guest RAM: one memfd mapped shared, carved into regions.
type Memory struct {
	fd      int
	mem     []byte
	huge    bool // hugetlbfs memfd: takes no write(2), only the mapping
	Regions []Region
}

// ErrOutOfRange is wrapped by every failed guest-physical access.
var ErrOutOfRange = errors.New("guest-physical range outside RAM")

// NewMemory creates a memfd of size bytes and maps it MAP_SHARED|
// MAP_NORESERVE: pages are allocated only when the guest touches them.
func NewMemory(size uint64) (*Memory, error) {
	if size < MinMemory {
		return nil, fmt.Errorf("guest memory %d bytes is below the %d MiB minimum", size, MinMemory>>20)
	}
	fd, err := unix.MemfdCreate("ktstr-guest-ram", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("size guest memory file to %d bytes: %w", size, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("map %d bytes of guest memory: %w", size, err)
	}
	return &Memory{fd: fd, mem: mem, Regions: Layout(size)}, nil
}

// newMemoryFromBytes wraps a plain buffer (tests, fuzzing).
func newMemoryFromBytes(b []byte) *Memory {
	return &Memory{fd: -1, mem: b, Regions: Layout(uint64(len(b)))}
}

// FD is the memory file's descriptor.
func (m *Memory) FD() int { return m.fd }

// Size is the RAM size in bytes.
func (m *Memory) Size() uint64 { return uint64(len(m.mem)) }

// Host returns the host mapping of region r.
func (m *Memory) Host(r Region) []byte { return m.mem[r.Offset : r.Offset+r.Size] }

// Close unmaps and closes the memory.
func (m *Memory) Close() error {
	if m.fd < 0 {
		return nil
	}
	unix.Munmap(m.mem)
	return unix.Close(m.fd)
}

// Slice returns the host bytes of [gpa, gpa+n), which must lie inside one
// RAM region. It never panics, whatever gpa and n are.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	s, err := m.offset(gpa, n)
	if err != nil {
		return nil, err
	}
	return m.mem[s : s+n : s+n], nil
}

// offset is where [gpa, gpa+n) lies in the memory file: the one bounds
// check every access goes through.
func (m *Memory) offset(gpa, n uint64) (uint64, error) {
	for _, r := range m.Regions {
		if gpa < r.GPA {
			continue
		}
		off := gpa - r.GPA
		if off > r.Size || n > r.Size-off {
			continue
		}
		return r.Offset + off, nil
	}
	return 0, fmt.Errorf("%w: [%#x, +%#x)", ErrOutOfRange, gpa, n)
}

// LoadFrom reads n bytes of src, from offset off, straight into guest RAM
// at gpa: no copy on the heap. From a file into the memfd it asks the
// kernel to copy page cache to guest pages (copy_file_range, or
// sendfile where the two files are on different file systems), so that
// neither a buffer nor a page fault per guest page is paid; anything else
// (a hugetlbfs memfd, a plain buffer, a reader that is not a file) is
// read into the mapping with ReadAt (pread for a file).
func (m *Memory) LoadFrom(gpa uint64, src io.ReaderAt, off int64, n uint64) error {
	at, err := m.offset(gpa, n)
	if err != nil {
		return err
	}
	if f, ok := src.(*os.File); ok && m.fd >= 0 && !m.huge {
		done := kernelCopy(f, off, m.fd, int64(at), int64(n))
		at, off, n = at+uint64(done), off+done, n-uint64(done)
	}
	return readFull(src, m.mem[at:at+n:at+n], off)
}

// kernelCopy copies up to n bytes from in at inOff to out at outOff inside
// the kernel, and returns how many it copied; it stops at the first error
// (the caller reads the rest).
func kernelCopy(in *os.File, inOff int64, out int, outOff, n int64) int64 {
	var done int64
	for done < n {
		ro, wo := inOff+done, outOff+done
		c, err := unix.CopyFileRange(int(in.Fd()), &ro, out, &wo, int(min(n-done, 1<<30)), 0)
		if err != nil || c <= 0 {
			break
		}
		done += int64(c)
	}
	for done < n { // copy_file_range refused (EXDEV between file systems): sendfile
		if _, err := unix.Seek(out, outOff+done, io.SeekStart); err != nil {
			break
		}
		ro := inOff + done
		c, err := unix.Sendfile(out, int(in.Fd()), &ro, int(min(n-done, 1<<30)))
		if err != nil || c <= 0 {
			break
		}
		done += int64(c)
	}
	return done
}

// readFull fills dst from src at off; a source shorter than promised is
// an error (a file that shrank after it was checked).
func readFull(src io.ReaderAt, dst []byte, off int64) error {
	for len(dst) > 0 {
		c, err := src.ReadAt(dst, off)
		dst, off = dst[c:], off+int64(c)
		if len(dst) == 0 {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%d bytes short: %w", len(dst), io.ErrUnexpectedEOF)
			}
			return err
		}
		if c == 0 {
			return fmt.Errorf("%d bytes short: %w", len(dst), io.ErrUnexpectedEOF)
		}
	}
	return nil
}

// Write copies b to guest-physical address gpa.
func (m *Memory) Write(gpa uint64, b []byte) error {
	s, err := m.Slice(gpa, uint64(len(b)))
	if err != nil {
		return err
	}
	copy(s, b)
	return nil
}

// U16 / U32 / U64 read little-endian integers at gpa.
func (m *Memory) U16(gpa uint64) (uint16, error) {
	s, err := m.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(s), nil
}

func (m *Memory) U32(gpa uint64) (uint32, error) {
	s, err := m.Slice(gpa, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s), nil
}

func (m *Memory) U64(gpa uint64) (uint64, error) {
	s, err := m.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
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

// E820Map is the memory map announced to the guest: base memory below
// the MP table, the MP table's 8 KiB reserved, RAM from 1 MiB to the hole
// and the rest above 4 GiB.
func E820Map(regions []Region) []E820Entry {
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
