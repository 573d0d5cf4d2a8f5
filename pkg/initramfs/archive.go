package initramfs

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// Kind is an archive entry's file type.
type Kind uint8

const (
	KindFile Kind = iota + 1
	KindDir
	KindSymlink
	KindCharDev
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	case KindCharDev:
		return "chardev"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one file in an archive.
type Entry struct {
	// Path is the absolute, clean path inside the archive.
	Path string
	Kind Kind
	// Perm holds the permission bits (including setuid, setgid, sticky).
	Perm uint32
	// Src is the host file a KindFile entry's bytes come from; Data is
	// used instead when Src is empty.
	Src  string
	Data []byte
	// Target is a symlink's target.
	Target string
	// Major and Minor are a device node's numbers.
	Major, Minor uint32
	// Origin names what asked for this entry (for conflict messages).
	Origin string

	// Filled in by planning for KindFile entries with a Src.
	stat fileStat
	// Filled in by hashing.
	digest string
}

// fileStat identifies a revision of a host file without reading it.
type fileStat struct {
	Dev, Ino   uint64
	Size       int64
	MtimeNS    int64
	CtimeNS    int64
	Mode       uint32
	valid      bool
	sourcePath string
}

// Newc type bits.
const (
	modeDir     = 0o040000
	modeReg     = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

func (e *Entry) size() int64 {
	switch e.Kind {
	case KindFile:
		if e.Src != "" {
			return e.stat.Size
		}
		return int64(len(e.Data))
	case KindSymlink:
		return int64(len(e.Target))
	}
	return 0
}

// sortEntries orders entries by path; a parent always sorts before its
// children because it is a prefix of them.
func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Path < es[j].Path })
}

// archiveName is the name stored in the header: the path without its
// leading slash ("init", "dev/console"), as the kernel's own
// usr/gen_init_cpio writes them.
func archiveName(p string) string { return strings.TrimPrefix(p, "/") }

// WriteArchive writes entries (already sorted and free of duplicates) as a
// newc archive with a trailer. Every header has mtime 0, uid/gid 0 and an
// inode number equal to the entry's position, so the bytes depend on the
// entries alone. progress, if not nil, is called with the number of file
// bytes written so far.
//
// cavaliergopher/cpio is used for every entry except device nodes: it has
// no fields for a node's rdevmajor/rdevminor (it writes 0,0), so those
// get one hand-written header (writeDeviceHeader). It never sets a header
// checksum: its writer switches a package-level magic to "070702" the first
// time a checksum is set, corrupting every later header in the process.
func WriteArchive(w io.Writer, entries []Entry, progress func(int64)) error {
	return writeArchive(w, entries, 1, progress)
}

// writeArchive numbers inodes from firstIno; progress gets the file bytes
// written by this call so far.
func writeArchive(w io.Writer, entries []Entry, firstIno int64, progress func(int64)) error {
	cw := cpio.NewWriter(w)
	var done int64
	for i := range entries {
		e := &entries[i]
		ino := firstIno + int64(i)
		name := archiveName(e.Path)
		if e.Kind == KindCharDev {
			if err := cw.Flush(); err != nil {
				return err
			}
			if err := writeDeviceHeader(w, name, ino, modeChar|e.Perm&0o7777, e.Major, e.Minor); err != nil {
				return err
			}
			continue
		}
		hdr := &cpio.Header{Name: name, Inode: ino, Links: 1, Size: e.size()}
		switch e.Kind {
		case KindFile:
			hdr.Mode = cpio.FileMode(modeReg | e.Perm&0o7777)
		case KindDir:
			hdr.Mode = cpio.FileMode(modeDir | e.Perm&0o7777)
			hdr.Links = 2
		case KindSymlink:
			hdr.Mode = cpio.FileMode(modeSymlink | 0o777)
		default:
			return fmt.Errorf("archive entry %s: unsupported kind %v", e.Path, e.Kind)
		}
		if err := cw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write header for %s: %w", e.Path, err)
		}
		switch e.Kind {
		case KindSymlink:
			if _, err := io.WriteString(cw, e.Target); err != nil {
				return err
			}
		case KindFile:
			if e.Src == "" {
				if _, err := cw.Write(e.Data); err != nil {
					return err
				}
				break
			}
			if err := copyFile(cw, e); err != nil {
				return err
			}
			done += e.stat.Size
			if progress != nil {
				progress(done)
			}
		}
	}
	return cw.Close()
}

// copyFile copies exactly the planned bytes of e.Src and fails if the file
// is not the revision that was planned (and hashed) or changes meanwhile.
func copyFile(w io.Writer, e *Entry) error {
	f, err := os.Open(e.Src)
	if err != nil {
		return fmt.Errorf("open %s: %w", e.Src, err)
	}
	defer f.Close()
	before, err := statFile(f)
	if err != nil {
		return err
	}
	if !sameRevision(before, e.stat) {
		return fmt.Errorf("%s changed while the initramfs was being built: run again", e.Src)
	}
	n, err := io.Copy(w, io.LimitReader(f, e.stat.Size))
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.Src, err)
	}
	after, err := statFile(f)
	if err != nil {
		return err
	}
	if n != e.stat.Size || !sameRevision(after, e.stat) {
		return fmt.Errorf("%s changed while the initramfs was being built: run again", e.Src)
	}
	return nil
}

func sameRevision(a, b fileStat) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.MtimeNS == b.MtimeNS && a.CtimeNS == b.CtimeNS
}

// writeDeviceHeader writes a complete newc header for a device node (no
// data), padded to four bytes. Layout (all fields 8 hex digits): magic
// "070701", ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
// devminor, rdevmajor, rdevminor, namesize, check; then the NUL-terminated
// name.
func writeDeviceHeader(w io.Writer, name string, ino int64, mode, major, minor uint32) error {
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, 1, 0, 0, 0, 0, major, minor, len(name)+1, 0)
	b := append([]byte(hdr), name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	_, err := w.Write(b)
	return err
}
