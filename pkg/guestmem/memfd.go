package guestmem

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Guest RAM as a VMM owns it: a memfd mapped shared and writable, whose
// /proc/PID/fd/N path a host tool opens with Open to read the same pages.

// NewMemfd creates a memfd named name of size bytes laid out as regions
// (nil: one region at GPA 0) and maps it MAP_SHARED|MAP_NORESERVE: pages
// are allocated only when the guest touches them.
func NewMemfd(name string, size uint64, regions []Region) (*Memory, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("size guest memory file to %d bytes: %w", size, err)
	}
	return MapMemfd(fd, size, regions, unix.MAP_NORESERVE, false)
}

// MapMemfd maps the size bytes of memfd fd shared and writable, with
// extra mmap flags (MAP_POPULATE for huge pages), and takes fd: Close
// closes it, and so does a failure here. huge says fd is on hugetlbfs,
// which takes no write(2): LoadFrom then reads into the mapping.
func MapMemfd(fd int, size uint64, regions []Region, flags int, huge bool) (*Memory, error) {
	if int64(int(size)) != int64(size) || size == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot map %d bytes of guest memory", size)
	}
	data, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|flags)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("map %d bytes of guest memory: %w", size, err)
	}
	m, err := New(data, regions)
	if err != nil {
		unix.Munmap(data)
		unix.Close(fd)
		return nil, err
	}
	m.unmap = func() error { return unix.Munmap(data) }
	m.fd, m.huge = fd, huge
	return m, nil
}

// FD is the memfd's descriptor (-1: the Memory has none).
func (m *Memory) FD() int { return m.fd }

// Host returns the mapping of region r (for KVM's memory slots).
func (m *Memory) Host(r Region) []byte { return m.data[r.Offset : r.Offset+r.Size : r.Offset+r.Size] }

// LoadFrom reads n bytes of src, from offset off, straight into guest RAM
// at gpa: no copy on the heap. From a file into a memfd it asks the
// kernel to copy page cache to guest pages (copy_file_range, or sendfile
// where the two files are on different file systems), so that neither a
// buffer nor a page fault per guest page is paid; anything else (a
// hugetlbfs memfd, plain memory, a reader that is not a file) is read
// into the mapping with ReadAt (pread for a file). A source shorter than
// n wraps io.ErrUnexpectedEOF.
func (m *Memory) LoadFrom(gpa uint64, src io.ReaderAt, off int64, n uint64) error {
	if !m.writable {
		return ErrReadOnly
	}
	at, err := m.offset(gpa, n)
	if err != nil {
		return err
	}
	if f, ok := src.(*os.File); ok && m.fd >= 0 && !m.huge {
		done := kernelCopy(f, off, m.fd, int64(at), int64(n))
		at, off, n = at+uint64(done), off+done, n-uint64(done)
	}
	return readFull(src, m.data[at:at+n:at+n], off)
}

// kernelCopy copies up to n bytes from in at inOff to out at outOff
// inside the kernel and returns how many it copied; it stops at the first
// error (the caller reads the rest).
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

// readFull fills dst from src at off.
func readFull(src io.ReaderAt, dst []byte, off int64) error {
	for len(dst) > 0 {
		c, err := src.ReadAt(dst, off)
		dst, off = dst[c:], off+int64(c)
		if len(dst) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if err != nil || c == 0 {
			return fmt.Errorf("%d bytes short: %w", len(dst), io.ErrUnexpectedEOF)
		}
	}
	return nil
}
