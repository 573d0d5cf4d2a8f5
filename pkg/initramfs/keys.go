package initramfs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

// layoutVersion changes whenever the archive bytes for the same entries
// would change (writer, header fields, compression settings).
const layoutVersion = "ktstr-initramfs-layout-1"

// keyWriter feeds length-prefixed fields into a hash, so that no two
// different field sequences hash the same.
type keyWriter struct{ h hash.Hash }

func newKey(kind, version string, c Compression) *keyWriter {
	k := &keyWriter{sha256.New()}
	k.str(layoutVersion)
	k.str(kind)
	k.str(version)
	k.str(string(c))
	return k
}

func (k *keyWriter) str(s string) { k.u64(uint64(len(s))); io.WriteString(k.h, s) }
func (k *keyWriter) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	k.h.Write(b[:])
}
func (k *keyWriter) sum() string { return hex.EncodeToString(k.h.Sum(nil)) }

func (k *keyWriter) entryHead(e *Entry) {
	k.str(e.Path)
	k.u64(uint64(e.Kind))
	k.u64(uint64(e.Perm))
	k.str(e.Target)
	k.u64(uint64(e.Major)<<32 | uint64(e.Minor))
	if e.Kind == KindFile && e.Src == "" {
		d := sha256.Sum256(e.Data)
		k.u64(uint64(len(e.Data)))
		k.h.Write(d[:])
	}
}

// statKey identifies a part by its layout and its host files' revisions
// (path, device, inode, size, mtime and ctime in ns) without reading them:
// the key of the stat-keyed index in front of the content key.
func statKey(kind, version string, c Compression, es []Entry) string {
	k := newKey("stat:"+kind, version, c)
	k.u64(uint64(len(es)))
	for i := range es {
		e := &es[i]
		k.entryHead(e)
		if e.Kind == KindFile && e.Src != "" {
			s := e.stat
			k.str(e.Src)
			k.u64(s.Dev)
			k.u64(s.Ino)
			k.u64(uint64(s.Size))
			k.u64(uint64(s.MtimeNS))
			k.u64(uint64(s.CtimeNS))
		}
	}
	return k.sum()
}

// contentKey identifies a part by its layout and the bytes of every file:
// the name it is cached under. Files with a Src must have been hashed
// (hashFiles).
func contentKey(kind, version string, c Compression, es []Entry) string {
	k := newKey(kind, version, c)
	k.u64(uint64(len(es)))
	for i := range es {
		e := &es[i]
		k.entryHead(e)
		if e.Kind == KindFile && e.Src != "" {
			k.u64(uint64(e.stat.Size))
			k.str(e.digest)
		}
	}
	return k.sum()
}

// hashFiles computes the sha256 of every host file, checking that each is
// still the revision that was planned. progress gets bytes hashed so far.
func hashFiles(es []Entry, progress func(int64)) error {
	var done int64
	buf := make([]byte, 1<<20)
	for i := range es {
		e := &es[i]
		if e.Kind != KindFile || e.Src == "" {
			continue
		}
		f, err := os.Open(e.Src)
		if err != nil {
			return fmt.Errorf("open %s: %w", e.Src, err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, io.LimitReader(f, e.stat.Size), buf)
		st, serr := statFile(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Src, err)
		}
		if serr != nil {
			return serr
		}
		if n != e.stat.Size || !sameRevision(st, e.stat) {
			return fmt.Errorf("%s changed while the initramfs was being built: run again", e.Src)
		}
		e.digest = hex.EncodeToString(h.Sum(nil))
		done += n
		if progress != nil {
			progress(done)
		}
	}
	return nil
}

// finalKey names the concatenation of a base part and a run part.
func finalKey(version string, c Compression, baseKey, runKey string) string {
	k := newKey("full", version, c)
	k.str(baseKey)
	k.str(runKey)
	return k.sum()
}
