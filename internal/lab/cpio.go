package lab

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Archive is an in-memory description of a newc cpio archive: the lab's
// own small initramfs builder for the L1 image and for test guests. Entries
// are written in sorted order with fixed metadata, so identical inputs give
// identical archives.
type Archive struct {
	entries map[string]entry
}

type entry struct {
	mode    uint32 // full st_mode (type and permission bits)
	data    []byte // inline file content or symlink target
	srcPath string // host file to copy, when data is nil
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
)

// NewArchive returns an empty archive.
func NewArchive() *Archive { return &Archive{entries: map[string]entry{}} }

func clean(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

func (a *Archive) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := a.entries[d]; !ok {
			a.entries[d] = entry{mode: modeDir | 0o755}
		}
	}
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm uint32) {
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeDir | perm&0o7777}
}

// Bytes adds a regular file with the given content.
func (a *Archive) Bytes(p string, perm uint32, b []byte) {
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeFile | perm&0o7777, data: append([]byte{}, b...)}
}

// Symlink adds a symbolic link.
func (a *Archive) Symlink(p, target string) {
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeLink | 0o777, data: []byte(target)}
}

// File adds host file src at p, following symlinks, keeping its permission
// bits. The file is read when the archive is written.
func (a *Archive) File(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("add %s to archive: %w", src, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("add %s to archive: not a regular file", src)
	}
	p = clean(p)
	a.parents(p)
	a.entries[p] = entry{mode: modeFile | uint32(st.Mode().Perm()), srcPath: src}
	return nil
}

// Tree adds every regular file, directory and symlink under host directory
// src at p.
func (a *Archive) Tree(p, src string) error {
	return filepath.WalkDir(src, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, fp)
		dst := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(fp)
			if err != nil {
				return err
			}
			a.Symlink(dst, t)
		case d.IsDir():
			a.Dir(dst, 0o755)
		case d.Type().IsRegular():
			return a.File(dst, fp)
		}
		return nil
	})
}

// Has reports whether p is in the archive.
func (a *Archive) Has(p string) bool { _, ok := a.entries[clean(p)]; return ok }

// WriteTo writes the archive in newc format, ending with the trailer.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var off int64
	ino := uint32(1)
	write := func(name string, mode uint32, nlink uint32, data []byte, src string, size int64) error {
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, 0, 0, len(name)+1, 0)
		ino++
		n, _ := bw.WriteString(hdr)
		n2, _ := bw.WriteString(name + "\x00")
		off += int64(n + n2)
		if pad := (4 - off%4) % 4; pad > 0 {
			bw.Write(make([]byte, pad))
			off += pad
		}
		if src != "" {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			c, err := io.Copy(bw, f)
			f.Close()
			if err != nil {
				return err
			}
			if c != size {
				return fmt.Errorf("%s changed size while archiving", src)
			}
		} else {
			bw.Write(data)
		}
		off += size
		if pad := (4 - off%4) % 4; pad > 0 {
			bw.Write(make([]byte, pad))
			off += pad
		}
		return nil
	}
	for _, n := range names {
		e := a.entries[n]
		size := int64(len(e.data))
		if e.srcPath != "" {
			st, err := os.Stat(e.srcPath)
			if err != nil {
				return off, fmt.Errorf("write archive: %w", err)
			}
			size = st.Size()
			if size > 0xFFFFFFFF {
				return off, fmt.Errorf("write archive: %s is too large for newc", e.srcPath)
			}
		}
		nlink := uint32(1)
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		if err := write(n, e.mode, nlink, e.data, e.srcPath, size); err != nil {
			return off, fmt.Errorf("write archive: %w", err)
		}
	}
	if err := write("TRAILER!!!", 0, 1, nil, "", 0); err != nil {
		return off, err
	}
	return off, bw.Flush()
}

// WriteFile writes the archive to a file at p.
func (a *Archive) WriteFile(p string) error {
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if _, err := a.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
