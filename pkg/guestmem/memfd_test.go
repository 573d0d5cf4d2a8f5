package guestmem

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMemfdLoadFrom: a VMM's memfd takes a file straight into guest RAM,
// in the kernel (NewMemfd) or through the mapping (MapMemfd with huge),
// byte for byte; the memfd's pages are the mapping's; bounds, short
// sources and read-only mappings are errors.
func TestMemfdLoadFrom(t *testing.T) {
	data := make([]byte, 1<<20+77)
	for i := range data {
		data[i] = byte(i * 13)
	}
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 5 << 20
	layout := SplitLayout(size, 3<<20) // 3 MiB low, 2 MiB at 4 GiB
	viaKernel, err := NewMemfd("test", size, layout)
	if err != nil {
		t.Fatal(err)
	}
	defer viaKernel.Close()
	fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	viaMapping, err := MapMemfd(fd, size, layout, unix.MAP_NORESERVE, true)
	if err != nil {
		t.Fatal(err)
	}
	defer viaMapping.Close()
	for name, m := range map[string]*Memory{"kernel copy": viaKernel, "pread": viaMapping} {
		t.Run(name, func(t *testing.T) {
			if m.FD() < 0 {
				t.Fatal("no memfd")
			}
			gpa := uint64(FourGiB + 5) // high region, unaligned
			n := uint64(len(data) - 9)
			if err := m.LoadFrom(gpa, f, 9, n); err != nil {
				t.Fatal(err)
			}
			got, _ := m.Slice(gpa, n)
			if !bytes.Equal(got, data[9:]) {
				t.Fatal("guest RAM differs from the file")
			}
			// The memfd holds the same bytes at the region's offset.
			back := make([]byte, 16)
			if _, err := unix.Pread(m.FD(), back, int64(3<<20+5)); err != nil || !bytes.Equal(back, data[9:25]) {
				t.Fatalf("memfd at the high region's offset: %x, %v", back, err)
			}
			if err := m.LoadFrom(3<<20-4, f, 0, 8); !errors.Is(err, ErrUnmapped) {
				t.Errorf("load across the hole: %v", err)
			}
			if err := m.LoadFrom(0, f, int64(len(data)-4), 8); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("short source: %v", err)
			}
		})
	}
	ro, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.LoadFrom(0, f, 0, 4); !errors.Is(err, ErrReadOnly) {
		t.Errorf("LoadFrom into a read-only mapping: %v", err)
	}
	if err := ro.Write(0, []byte{1}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Write into a read-only mapping: %v", err)
	}
}
