package guestmem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/regfile"
)

// Region maps the guest-physical range [GPA, GPA+Size) to the bytes at
// [Offset, Offset+Size) of the memory file.
type Region struct {
	GPA    uint64
	Size   uint64
	Offset uint64
}

// ErrUnmapped is wrapped by reads of guest-physical addresses that no
// region covers.
var ErrUnmapped = errors.New("guest-physical address not in guest RAM")

// Memory is guest RAM: read-only when Open mapped it, writable (PutU64,
// Write, LoadFrom) when OpenWritable mapped it, New wraps plain memory, or
// a VMM created it (NewMemfd, MapMemfd: memfd.go).
type Memory struct {
	data     []byte
	regions  []Region // sorted by GPA
	unmap    func() error
	writable bool
	fd       int  // the memfd a VMM created (-1: none)
	huge     bool // the memfd is on hugetlbfs: it takes no write(2)
}

// New returns a Memory over data with the given layout. Each region must
// lie inside data and regions must not overlap in guest-physical space.
// With no regions, data is taken as one region at GPA 0.
func New(data []byte, regions []Region) (*Memory, error) {
	if len(regions) == 0 {
		regions = []Region{{GPA: 0, Size: uint64(len(data)), Offset: 0}}
	}
	rs := append([]Region(nil), regions...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].GPA < rs[j].GPA })
	for i, r := range rs {
		if r.Size == 0 {
			return nil, fmt.Errorf("guest memory region %d at GPA %#x is empty", i, r.GPA)
		}
		if r.GPA+r.Size < r.GPA || r.Offset+r.Size < r.Offset {
			return nil, fmt.Errorf("guest memory region at GPA %#x size %#x overflows", r.GPA, r.Size)
		}
		if r.Offset+r.Size > uint64(len(data)) {
			return nil, fmt.Errorf("guest memory region at GPA %#x needs file bytes up to %#x; the file has %#x", r.GPA, r.Offset+r.Size, len(data))
		}
		if i > 0 && rs[i-1].GPA+rs[i-1].Size > r.GPA {
			return nil, fmt.Errorf("guest memory regions at GPA %#x and %#x overlap", rs[i-1].GPA, r.GPA)
		}
	}
	// Plain memory (not a mapping) takes writes: PutU64 works on it.
	return &Memory{data: data, regions: rs, writable: true, fd: -1}, nil
}

// Open maps the file at path read-only and shared, so that reads see the
// guest's writes as they happen. With no regions the whole file is one
// region at GPA 0 (use DefaultLayout for QEMU's split around the PCI hole).
//
// Only a regular file is accepted (a memfd named as /proc/PID/fd/N is
// one). The file is opened with O_NONBLOCK, so that a FIFO or a device
// given by mistake, or named by a forged frame, is refused at once instead
// of blocking the caller forever.
func Open(path string, regions []Region) (*Memory, error) { return open(path, regions, false) }

// OpenWritable is Open with a writable shared mapping, for the few writes
// a host tool makes into guest RAM on request (ktstr-monitor's sched_ext
// watchdog override): see PutU64.
func OpenWritable(path string, regions []Region) (*Memory, error) { return open(path, regions, true) }

func open(path string, regions []Region, writable bool) (*Memory, error) {
	flag, prot := os.O_RDONLY, unix.PROT_READ
	if writable {
		flag, prot = os.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
	}
	f, st, err := regfile.Open(path, flag)
	var nr *regfile.NotRegularError
	if errors.As(err, &nr) {
		return nil, fmt.Errorf("guest memory %s is a %s, not a regular file (a RAM file or memfd)", path, nr.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("open guest memory: %w", err)
	}
	defer f.Close()
	size := st.Size()
	if size <= 0 {
		return nil, fmt.Errorf("guest memory %s is empty", path)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("guest memory %s is too large to map", path)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map guest memory %s: %w", path, err)
	}
	m, err := New(data, regions)
	if err != nil {
		unix.Munmap(data)
		return nil, err
	}
	m.unmap = func() error { return unix.Munmap(data) }
	m.writable = writable
	return m, nil
}

// ErrReadOnly is returned by writes to a Memory not opened with
// OpenWritable.
var ErrReadOnly = errors.New("guest memory is mapped read-only")

// PutU64 writes a little-endian uint64 at gpa (one aligned store when gpa
// is 8-byte aligned, as a kernel variable is).
func (m *Memory) PutU64(gpa, v uint64) error {
	if !m.writable {
		return ErrReadOnly
	}
	s, err := m.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(s, v)
	return nil
}

// ErrFault is wrapped by Guard's error when a read of the mapping faulted:
// the file was truncated, or its pages taken away, while it was mapped.
var ErrFault = errors.New("guest memory faulted: the file shrank or went away while mapped")

// Guard runs fn, which reads m, and turns a memory fault inside m's
// mapping (SIGBUS after the file shrank) into an error wrapping ErrFault
// instead of a crash. Any other panic goes on. Reads of m must happen in
// fn's goroutine.
func (m *Memory) Guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		p := recover()
		if p == nil {
			return
		}
		if f, ok := p.(interface{ Addr() uintptr }); ok && m.contains(f.Addr()) {
			err = fmt.Errorf("%w (%v at %#x)", ErrFault, p, f.Addr())
			return
		}
		panic(p)
	}()
	return fn()
}

// contains reports whether addr lies in the mapping.
func (m *Memory) contains(addr uintptr) bool {
	if len(m.data) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(&m.data[0]))
	return addr >= lo && addr-lo < uintptr(len(m.data))
}

// Close unmaps a Memory made by Open or a VMM (and closes its memfd).
// Slices it returned become invalid.
func (m *Memory) Close() error {
	if m.unmap == nil {
		return nil
	}
	u := m.unmap
	m.unmap, m.data = nil, nil
	err := u()
	if m.fd >= 0 {
		if cerr := unix.Close(m.fd); err == nil {
			err = cerr
		}
		m.fd = -1
	}
	return err
}

// Regions returns the layout, sorted by GPA.
func (m *Memory) Regions() []Region { return append([]Region(nil), m.regions...) }

// Size is the total guest RAM the layout covers.
func (m *Memory) Size() uint64 {
	var s uint64
	for _, r := range m.regions {
		s += r.Size
	}
	return s
}

// Slice returns the n bytes at guest-physical gpa as a view of the
// mapping (not a copy: the guest may change them). The range must lie in
// one region. It never panics, whatever gpa and n are.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	s, err := m.offset(gpa, n)
	if err != nil {
		return nil, err
	}
	return m.data[s : s+n : s+n], nil
}

// offset is where [gpa, gpa+n) lies in the mapping: the one bounds check
// every access to guest RAM goes through. A zero-length range may sit at
// a region's end.
func (m *Memory) offset(gpa, n uint64) (uint64, error) {
	for i := range m.regions {
		r := &m.regions[i]
		if gpa < r.GPA || gpa-r.GPA > r.Size {
			continue
		}
		off := gpa - r.GPA
		if n > r.Size-off {
			if off == r.Size {
				continue // at the end: maybe the start of the next region
			}
			return 0, fmt.Errorf("%d bytes at GPA %#x run past the end of guest RAM region at %#x: %w", n, gpa, r.GPA, ErrUnmapped)
		}
		return r.Offset + off, nil
	}
	return 0, fmt.Errorf("%d bytes at GPA %#x: %w", n, gpa, ErrUnmapped)
}

// Read copies len(dst) bytes from guest-physical gpa.
func (m *Memory) Read(gpa uint64, dst []byte) error {
	s, err := m.Slice(gpa, uint64(len(dst)))
	if err != nil {
		return err
	}
	copy(dst, s)
	return nil
}

// Write copies b to guest-physical gpa.
func (m *Memory) Write(gpa uint64, b []byte) error {
	if !m.writable {
		return ErrReadOnly
	}
	s, err := m.Slice(gpa, uint64(len(b)))
	if err != nil {
		return err
	}
	copy(s, b)
	return nil
}

// U16 reads a little-endian uint16 at gpa.
func (m *Memory) U16(gpa uint64) (uint16, error) {
	s, err := m.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(s), nil
}

// U64 reads a little-endian uint64 at gpa.
func (m *Memory) U64(gpa uint64) (uint64, error) {
	s, err := m.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
}

// U32 reads a little-endian uint32 at gpa.
func (m *Memory) U32(gpa uint64) (uint32, error) {
	s, err := m.Slice(gpa, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s), nil
}

// QEMU's x86 machines (pc, q35, microvm) put RAM below the 32-bit PCI hole
// up to a machine-specific limit and the rest at 4 GiB. These are the
// limits QEMU uses when the machine is given more RAM than fits below.
const (
	FourGiB = 4 << 30
	// MicrovmLowMemMax is the most RAM QEMU's microvm machine puts below
	// 4 GiB (its default max-ram-below-4g, 3 GiB).
	MicrovmLowMemMax = 3 << 30
)

// SplitLayout returns the layout of a file of size bytes whose first
// lowMax bytes sit at GPA 0 and the rest at 4 GiB: how QEMU lays out one
// memory backend on its x86 machines.
func SplitLayout(size, lowMax uint64) []Region {
	if size <= lowMax {
		return []Region{{GPA: 0, Size: size}}
	}
	return []Region{{GPA: 0, Size: lowMax}, {GPA: FourGiB, Size: size - lowMax, Offset: lowMax}}
}
