package vmm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// countingReader records how many bytes were read through it.
type countingReader struct {
	r io.ReaderAt
	n int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// TestParseBzImageAtReadsHeaderOnly: parsing a bzImage reads its setup
// header and nothing more, whatever the file's size; the kernel itself is
// read once, into guest RAM.
func TestParseBzImageAtReadsHeaderOnly(t *testing.T) {
	b := fakeBzImage(0x020F, xlfKernel64)
	b = append(b, make([]byte, 4<<20)...) // a large image
	cr := &countingReader{r: bytes.NewReader(b)}
	k, err := parseBzImageAt(cr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if cr.n > setupRead {
		t.Errorf("parsing read %d bytes, want at most %d", cr.n, setupRead)
	}
	m := newMemoryFromBytes(make([]byte, 64<<20))
	if err := k.loadImage(m); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Slice(kernelAddr, k.ImageSize)
	if !bytes.Equal(got, b[5*512:]) {
		t.Error("image in guest RAM differs from the file after the setup sectors")
	}
	if cr.n > setupRead+int64(k.ImageSize) {
		t.Errorf("read %d bytes in all, want the header and the image once", cr.n)
	}
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// TestLoadFrom: a file lands byte for byte at its guest-physical address
// in the memfd-backed RAM (the copy_file_range/sendfile path), in a plain
// buffer (the pread path), and from a reader that is not a file; ranges
// outside RAM and short sources are errors.
func TestLoadFrom(t *testing.T) {
	dir := t.TempDir()
	data := pattern(3<<20+123, 0x5A)
	p := writeFile(t, dir, "blob", data)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	memfd, err := newMemory(MinMemory)
	if err != nil {
		t.Fatal(err)
	}
	defer memfd.Close()
	for _, tc := range []struct {
		name string
		mem  *guestmem.Memory
		src  io.ReaderAt
	}{
		{"file into memfd", memfd, f},
		{"file into a buffer", newMemoryFromBytes(make([]byte, MinMemory)), f},
		{"bytes into memfd", memfd, bytes.NewReader(data)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const gpa = 0x300001 // unaligned on purpose
			if err := tc.mem.LoadFrom(gpa, tc.src, 17, uint64(len(data)-17)); err != nil {
				t.Fatal(err)
			}
			got, _ := tc.mem.Slice(gpa, uint64(len(data)-17))
			if !bytes.Equal(got, data[17:]) {
				t.Fatal("guest RAM differs from the source")
			}
			if err := tc.mem.LoadFrom(MinMemory-10, tc.src, 0, 11); !errors.Is(err, guestmem.ErrUnmapped) {
				t.Errorf("load past the end of RAM: %v, want guestmem.ErrUnmapped", err)
			}
			if err := tc.mem.LoadFrom(0, tc.src, int64(len(data))-5, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("source 5 bytes short: %v, want ErrUnexpectedEOF", err)
			}
		})
	}
}

// TestOpenInitramfs: several files are concatenated in guest RAM in the
// order given; one that shrank after it was opened fails the load with a
// message naming it; bad files are refused before anything is read.
func TestOpenInitramfs(t *testing.T) {
	dir := t.TempDir()
	kb := fakeBzImage(0x020F, xlfKernel64)
	kp := writeFile(t, dir, "bzImage", kb)
	k, err := OpenKernel(kp, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	a, b := pattern(100_000, 1), pattern(4097, 2)
	pa, pb := writeFile(t, dir, "a", a), writeFile(t, dir, "b", b)
	ir, err := OpenInitramfs([]string{pa, pb}, k, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ir.Close()
	if ir.Size() != uint64(len(a)+len(b)) {
		t.Fatalf("size %d", ir.Size())
	}
	m := newMemoryFromBytes(make([]byte, 64<<20))
	info, err := LoadBoot(m, BootConfig{Kernel: k, Initramfs: ir, Cmdline: "x", Topology: flat(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.Slice(info.InitrdAddr, ir.Size())
	if !bytes.Equal(got, append(append([]byte(nil), a...), b...)) {
		t.Error("initramfs in guest RAM is not a then b")
	}
	img, _ := m.Slice(kernelAddr, k.ImageSize)
	if !bytes.Equal(img, kb[5*512:]) {
		t.Error("kernel image in guest RAM differs")
	}

	// b shrinks between the open and the load.
	ir2, err := OpenInitramfs([]string{pa, pb}, k, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ir2.Close()
	if err := os.Truncate(pb, 10); err != nil {
		t.Fatal(err)
	}
	_, err = LoadBoot(newMemoryFromBytes(make([]byte, 64<<20)), BootConfig{Kernel: k, Initramfs: ir2, Topology: flat(t, 1)})
	if err == nil || !strings.Contains(err.Error(), "shrank") || !strings.Contains(err.Error(), pb) {
		t.Errorf("shrunk initramfs: %v", err)
	}

	// Refused before reading: a directory, a FIFO, a missing file, too large.
	if _, err := OpenInitramfs([]string{dir}, k, 64<<20); err == nil {
		t.Error("a directory was accepted")
	}
	if _, err := OpenInitramfs([]string{filepath.Join(dir, "nope")}, k, 64<<20); err == nil {
		t.Error("a missing file was accepted")
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 80<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenInitramfs([]string{big}, k, 64<<20); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("an initramfs larger than RAM: %v", err)
	}
	if ir, err := OpenInitramfs(nil, k, 64<<20); ir != nil || err != nil {
		t.Errorf("no paths: %v, %v", ir, err)
	}
}

// TestOpenKernel: the bzImage checks of OpenKernel, and a kernel file that
// shrank after it was opened fails the load.
func TestOpenKernel(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenKernel(writeFile(t, dir, "text", []byte("not a kernel")), 64<<20); err == nil {
		t.Error("a text file was accepted")
	}
	if _, err := OpenKernel(dir, 64<<20); err == nil {
		t.Error("a directory was accepted")
	}
	kp := writeFile(t, dir, "bzImage", fakeBzImage(0x020F, xlfKernel64))
	k, err := OpenKernel(kp, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := os.Truncate(kp, 5*512+100); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBoot(newMemoryFromBytes(make([]byte, 64<<20)), BootConfig{Kernel: k, Topology: flat(t, 1)}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("shrunk kernel: %v, want ErrUnexpectedEOF", err)
	}
}

// TestSetupClock: phases are kept in order and add up to the total; a nil
// clock ignores marks.
func TestSetupClock(t *testing.T) {
	start := time.Now().Add(-time.Millisecond)
	c := NewSetupClock(start)
	for _, p := range []string{PhaseArgs, PhaseOpenKVM, PhaseVCPUs} {
		c.Mark(p)
	}
	ps := c.Phases()
	if len(ps) != 3 || ps[0].Name != PhaseArgs || ps[2].Name != PhaseVCPUs {
		t.Fatalf("phases %+v", ps)
	}
	var sum uint64
	for _, p := range ps {
		sum += p.NS
	}
	if sum != uint64(c.Total()) || c.Total() < time.Millisecond {
		t.Errorf("phases sum to %d, total %v", sum, c.Total())
	}
	c.AddConcurrent([]wire.SetupPhase{{Name: PhaseLoadKernel, NS: 5}})
	if ps := c.Phases(); len(ps) != 4 || !ps[3].Concurrent || ps[3].NS != 5 || ps[2].Concurrent {
		t.Errorf("after AddConcurrent: %+v", ps)
	}
	if uint64(c.Total()) != sum {
		t.Error("a concurrent phase changed the total")
	}
	var nilClock *SetupClock
	nilClock.AddConcurrent(ps)
	nilClock.Mark(PhaseArgs)
	if nilClock.Phases() != nil || nilClock.Total() != 0 {
		t.Error("a nil clock recorded something")
	}
}
