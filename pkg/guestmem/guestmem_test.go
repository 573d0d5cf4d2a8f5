package guestmem

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// ptBuilder lays out page tables inside a synthetic guest RAM image.
type ptBuilder struct {
	t      *testing.T
	ram    []byte
	next   uint64 // next free page for tables
	root   uint64
	levels int
}

func newPTBuilder(t *testing.T, ram []byte, tableBase uint64, levels int) *ptBuilder {
	b := &ptBuilder{t: t, ram: ram, next: tableBase, levels: levels}
	b.root = b.alloc()
	return b
}

func (b *ptBuilder) alloc() uint64 {
	p := b.next
	b.next += pageSize
	if b.next > uint64(len(b.ram)) {
		b.t.Fatal("synthetic RAM too small for page tables")
	}
	return p
}

// mapPage maps va to gpa with a page of 4 KiB (level 1), 2 MiB (level 2)
// or 1 GiB (level 3).
func (b *ptBuilder) mapPage(va, gpa uint64, leafLevel int) {
	table := b.root
	for level := b.levels; level > leafLevel; level-- {
		idx := (va >> (12 + 9*(level-1))) & 0x1ff
		ea := table + idx*8
		e := binary.LittleEndian.Uint64(b.ram[ea:])
		if e&ptePresent == 0 {
			e = b.alloc() | ptePresent | 2
			binary.LittleEndian.PutUint64(b.ram[ea:], e)
		}
		table = e & pteAddrMask
	}
	idx := (va >> (12 + 9*(leafLevel-1))) & 0x1ff
	e := gpa | ptePresent | 2 | 1<<63 // NX set: must be masked off
	if leafLevel > 1 {
		e |= ptePS
	}
	binary.LittleEndian.PutUint64(b.ram[table+idx*8:], e)
}

func TestRegions(t *testing.T) {
	data := make([]byte, 3*pageSize)
	for i := range data {
		data[i] = byte(i / pageSize)
	}
	m, err := New(data, []Region{{GPA: 0x10000, Size: pageSize, Offset: 2 * pageSize}, {GPA: 0, Size: 2 * pageSize}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		gpa  uint64
		n    uint64
		want byte
		err  bool
	}{
		{"first region", 0x10, 4, 0, false},
		{"first region second page", pageSize + 8, 8, 1, false},
		{"second region", 0x10000, 8, 2, false},
		{"second region last byte", 0x10000 + pageSize - 1, 1, 2, false},
		{"past second region", 0x10000 + pageSize - 1, 2, 0, true},
		{"hole", 2 * pageSize, 1, 0, true},
		{"huge length", 0, ^uint64(0), 0, true},
		{"top of address space", ^uint64(0) - 3, 4, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := m.Slice(tc.gpa, tc.n)
			if tc.err {
				if !errors.Is(err, ErrUnmapped) {
					t.Fatalf("Slice(%#x, %d) = %v, want ErrUnmapped", tc.gpa, tc.n, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(s)) != tc.n || s[0] != tc.want {
				t.Fatalf("Slice(%#x, %d) = %d bytes starting %d, want %d starting %d", tc.gpa, tc.n, len(s), s[0], tc.n, tc.want)
			}
		})
	}
	if m.Size() != 3*pageSize {
		t.Errorf("Size = %d", m.Size())
	}
}

func TestNewRejectsBadLayouts(t *testing.T) {
	data := make([]byte, 2*pageSize)
	bad := [][]Region{
		{{GPA: 0, Size: 3 * pageSize}},
		{{GPA: 0, Size: pageSize}, {GPA: pageSize / 2, Size: pageSize, Offset: pageSize}},
		{{GPA: 0, Size: 0}},
		{{GPA: ^uint64(0), Size: 2}},
		{{GPA: 0, Size: 2, Offset: ^uint64(0)}},
	}
	for i, rs := range bad {
		if _, err := New(data, rs); err == nil {
			t.Errorf("layout %d %+v accepted", i, rs)
		}
	}
}

func TestSplitLayout(t *testing.T) {
	if got := SplitLayout(512<<20, MicrovmLowMemMax); len(got) != 1 || got[0].Size != 512<<20 {
		t.Errorf("512 MiB: %+v", got)
	}
	got := SplitLayout(4<<30, MicrovmLowMemMax)
	want := []Region{{0, 3 << 30, 0}, {4 << 30, 1 << 30, 3 << 30}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("4 GiB: %+v, want %+v", got, want)
	}
}

func TestPageWalk(t *testing.T) {
	for _, levels := range []int{4, 5} {
		ram := make([]byte, 8<<20)
		b := newPTBuilder(t, ram, 6<<20, levels)
		va4k := uint64(0xffffc90000123000) // vmalloc-like
		if levels == 5 {
			va4k = 0xffa0000000123000
		}
		b.mapPage(va4k, 0x5000, 1)
		b.mapPage(va4k+pageSize, 0x9000, 1) // discontiguous next page
		va2m := uint64(0xffffffff81200000)
		b.mapPage(va2m, 0x200000, 2)
		va1g := uint64(0xffff888000000000)
		if levels == 5 {
			va1g = 0xff11000000000000
		}
		b.mapPage(va1g, 0, 3)
		copy(ram[0x5ff8:], "ABCDEFGH")
		copy(ram[0x9000:], "IJKLMNOP")
		m, err := New(ram, nil)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := NewPageTable(m, b.root|0x18 /* CR3 flag bits */, levels)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			va, gpa, size uint64
		}{
			{va4k + 0x10, 0x5010, pageSize},
			{va4k + pageSize + 1, 0x9001, pageSize},
			{va2m + 0x12345, 0x212345, 2 << 20},
			{va1g + 0x7654321, 0x7654321, 1 << 30},
		}
		for _, tc := range tests {
			gpa, size, err := pt.Translate(tc.va)
			if err != nil || gpa != tc.gpa || size != tc.size {
				t.Errorf("%d-level Translate(%#x) = %#x, %#x, %v; want %#x, %#x", levels, tc.va, gpa, size, err, tc.gpa, tc.size)
			}
		}
		buf := make([]byte, 16)
		if err := pt.Read(va4k+pageSize-8, buf); err != nil || string(buf) != "ABCDEFGHIJKLMNOP" {
			t.Errorf("%d-level cross-page Read = %q, %v", levels, buf, err)
		}
		for _, va := range []uint64{va4k + 2*pageSize, 0xffff800000000000 + 1<<40, 0x0000800000000000, 0x00ff000000000000} {
			if _, _, err := pt.Translate(va); !errors.Is(err, ErrNotPresent) {
				t.Errorf("%d-level Translate(%#x) err = %v, want ErrNotPresent", levels, va, err)
			}
		}
	}
	if _, err := NewPageTable(nil, 0, 3); err == nil {
		t.Error("3-level paging accepted")
	}
}

func TestOpenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ram")
	data := make([]byte, 2*pageSize)
	copy(data[pageSize:], "hello")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	buf := make([]byte, 5)
	if err := m.Read(pageSize, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("Read = %q, %v", buf, err)
	}
	// The mapping is shared: later writes to the file show through.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("world"), pageSize)
	f.Close()
	if err := m.Read(pageSize, buf); err != nil || string(buf) != "world" {
		t.Fatalf("Read after write = %q, %v", buf, err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	// A read-only mapping refuses writes; a writable one writes through to
	// the file, and stays inside guest RAM.
	if err := m.PutU64(pageSize, 1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("PutU64 on a read-only mapping: %v", err)
	}
	w, err := OpenWritable(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.PutU64(pageSize+8, 0x1122334455667788); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if got := binary.LittleEndian.Uint64(b[pageSize+8:]); got != 0x1122334455667788 {
		t.Fatalf("file holds %#x after PutU64", got)
	}
	if err := w.PutU64(2*pageSize-4, 1); !errors.Is(err, ErrUnmapped) {
		t.Fatalf("PutU64 past the end: %v", err)
	}
}

// FuzzPageWalk feeds arbitrary page-table contents and addresses: the walk
// must never panic or read outside guest RAM.
func FuzzPageWalk(f *testing.F) {
	f.Add(make([]byte, 64), uint64(0xffffffff81000000), uint64(0), true)
	seed := make([]byte, 3*pageSize)
	binary.LittleEndian.PutUint64(seed[0x1ff*8:], pageSize|ptePresent)
	binary.LittleEndian.PutUint64(seed[pageSize+0x1fe*8:], 0xfff_ffff_f000|ptePresent|ptePS)
	f.Add(seed, uint64(0xffffffff80000000), uint64(0), false)
	f.Fuzz(func(t *testing.T, ram []byte, va, root uint64, five bool) {
		if len(ram) == 0 {
			return
		}
		m, err := New(ram, nil)
		if err != nil {
			t.Fatal(err)
		}
		levels := 4
		if five {
			levels = 5
		}
		pt, _ := NewPageTable(m, root, levels)
		gpa, size, err := pt.Translate(va)
		if err == nil {
			if size != pageSize && size != 2<<20 && size != 1<<30 {
				t.Fatalf("page size %#x", size)
			}
			_ = gpa
		}
		buf := make([]byte, 9000)
		_ = pt.Read(va, buf)
	})
}
