package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cachedir"
	"github.com/ktstr-go/ktstr/pkg/lockfile"
)

// Cache is the on-disk blob cache. Layout under Dir:
//
//	blobs/KEY.cpio.zst       a blob (part or concatenation), immutable
//	blobs/KEY.cpio.zst.meta  its sidecar (JSON): size, sha256, the blob's
//	                         inode revision, kind, parts; written last, so a
//	                         blob without a sidecar is not in the cache
//	index/STATKEY            the content key of the base part whose host
//	                         files had these revisions
//	locks/KEY.lock           per-key flock
//	tmp/                     files being written (renamed into place)
type Cache struct {
	Dir string
}

// DefaultCacheDir is $KTSTR_CACHE_DIR, else $XDG_CACHE_HOME/ktstr/initramfs,
// else ~/.cache/ktstr/initramfs.
func DefaultCacheDir() (string, error) { return cachedir.Dir("KTSTR_CACHE_DIR", "initramfs") }

// OpenCache creates the cache directories if needed.
func OpenCache(dir string) (*Cache, error) {
	for _, sub := range []string{"blobs", "index", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	c := &Cache{Dir: dir}
	// Debris of builders killed mid-write goes now, not an hour later:
	// a killed build of a large base part leaves tens of MB.
	c.sweepTmp()
	return c, nil
}

// meta is a blob's sidecar.
type meta struct {
	Key         string      `json:"key"`
	Kind        string      `json:"kind"` // base, run or full
	Compression Compression `json:"compression"`
	Size        int64       `json:"size"`
	SHA256      string      `json:"sha256"`
	Dev         uint64      `json:"dev"`
	Ino         uint64      `json:"ino"`
	MtimeNS     int64       `json:"mtime_ns"`
	Created     int64       `json:"created"`
	Parts       []string    `json:"parts,omitempty"`
	// Segments, for a concatenation, are its parts' sizes and hashes in
	// order (SHA256 is then empty): verifying hashes each segment.
	Segments []segment `json:"segments,omitempty"`
}

type segment struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (c *Cache) blobPath(key string, comp Compression) string {
	return filepath.Join(c.Dir, "blobs", key+comp.Ext())
}

// lock takes an exclusive flock on the key's lock file, blocking. The lock
// file may be removed by --gc (which holds the lock while it does), so
// after locking it checks that the path still names the locked file.
func (c *Cache) lock(key string) (unlock func(), err error) {
	return lockfile.Lock(filepath.Join(c.Dir, "locks", key+".lock"), syscall.LOCK_EX)
}

// tryLock is lock without blocking; ok is false if someone holds it.
func (c *Cache) tryLock(key string) (unlock func(), ok bool) {
	return lockfile.TryLock(filepath.Join(c.Dir, "locks", key+".lock"))
}

// lookup returns the path of a valid cached blob. Validity: the sidecar
// exists and the blob has the inode revision and size it records; if the
// revision differs (or verify is set) the blob's sha256 is checked, and a
// blob that fails is removed. A hit refreshes the sidecar's mtime, which
// --gc reads as "last used".
func (c *Cache) lookup(key string, comp Compression, verify bool) (string, *meta, bool) {
	bp := c.blobPath(key, comp)
	m, err := readMeta(bp + ".meta")
	if err != nil || m.Key != key {
		return "", nil, false
	}
	st, err := statPath(bp)
	if err != nil {
		return "", nil, false
	}
	if verify || st.Dev != m.Dev || st.Ino != m.Ino || st.Size != m.Size || st.MtimeNS != m.MtimeNS {
		if st.Size != m.Size || !verifyBlob(bp, m) {
			os.Remove(bp + ".meta")
			os.Remove(bp)
			return "", nil, false
		}
		m.Dev, m.Ino, m.MtimeNS = st.Dev, st.Ino, st.MtimeNS
		_ = writeFileAtomic(c, bp+".meta", mustJSON(m))
	}
	now := time.Now()
	_ = os.Chtimes(bp+".meta", now, now)
	return bp, m, true
}

func readMeta(p string) (*meta, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// verifyBlob hashes the blob (or each of its segments) against m.
func verifyBlob(p string, m *meta) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	segs := m.Segments
	if len(segs) == 0 {
		segs = []segment{{Size: m.Size, SHA256: m.SHA256}}
	}
	var total int64
	for _, s := range segs {
		h := sha256.New()
		if n, err := io.Copy(h, io.LimitReader(f, s.Size)); err != nil || n != s.Size || hex.EncodeToString(h.Sum(nil)) != s.SHA256 {
			return false
		}
		total += s.Size
	}
	return total == m.Size
}

// tempFile creates a locked temporary file under tmp/ (same file system
// as blobs/); see TempMarker.
func (c *Cache) tempFile(key string) (*os.File, error) {
	f, err := createTemp(filepath.Join(c.Dir, "tmp"), fmt.Sprintf("%.16s", key))
	if err == nil {
		if err = f.Chmod(0o644); err != nil {
			abortTemp(f)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create cache file: %w", err)
	}
	return f, nil
}

// sweepTmp removes stale files under tmp/: those of killed builders (see
// TempMarker), and unlocked files older than an hour without the marker
// (left by older versions). It returns how many it removed.
func (c *Cache) sweepTmp() int {
	dir := filepath.Join(c.Dir, "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		name := de.Name()
		pid, age := 0, time.Hour
		if i := strings.Index(name, TempMarker); i >= 0 {
			rest := name[i+len(TempMarker):]
			p, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0])
			if err != nil || p <= 0 {
				continue
			}
			pid, age = p, staleTempAge
		}
		if removeIfStale(filepath.Join(dir, name), pid, age) {
			n++
		}
	}
	return n
}

func writeFileAtomic(c *Cache, dst string, data []byte) error {
	f, err := c.tempFile(filepath.Base(dst))
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		abortTemp(f)
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return commitTemp(f, dst)
}

// store writes a blob through write and publishes it under key with a
// sidecar that records its SHA-256. The caller holds the key's lock.
func (c *Cache) store(key, kind string, comp Compression, parts []string, write func(io.Writer) error) (string, *meta, error) {
	m := &meta{Key: key, Kind: kind, Compression: comp, Parts: parts}
	h := sha256.New()
	bp, err := c.publish(key, comp, m, func(f *os.File) error {
		return write(io.MultiWriter(f, h))
	}, func() { m.SHA256 = hex.EncodeToString(h.Sum(nil)) })
	if err != nil {
		return "", nil, err
	}
	return bp, m, nil
}

// storeConcat stores the concatenation of cached blobs (their paths and
// sidecars) under key. The bytes are copied with io.Copy between files,
// which uses copy_file_range (in-kernel copy, or a reflink where the file
// system shares extents), and are not hashed again: the sidecar lists the
// parts' hashes as segments.
func (c *Cache) storeConcat(key string, comp Compression, paths []string, metas []*meta) (string, *meta, error) {
	m := &meta{Key: key, Kind: "full", Compression: comp}
	bp, err := c.publish(key, comp, m, func(f *os.File) error {
		for i, p := range paths {
			src, err := os.Open(p)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("cached part %s was removed while in use (by --gc?): run again", p)
			}
			if err != nil {
				return err
			}
			n, err := io.Copy(f, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("concatenate parts: %w", err)
			}
			if n != metas[i].Size {
				return fmt.Errorf("cached part %s changed size while being copied: run again", p)
			}
			m.Parts = append(m.Parts, metas[i].Key)
			m.Segments = append(m.Segments, segment{Size: n, SHA256: metas[i].SHA256})
		}
		return nil
	}, nil)
	if err != nil {
		return "", nil, err
	}
	return bp, m, nil
}

// publish writes a blob through write into a temporary file, renames it
// into place and then writes its sidecar m, completed with the file's
// size and identity (and by written, if not nil, once the blob is
// complete). A process killed at any point leaves either nothing, a
// temporary file (removed by --gc) or a blob without a sidecar (not a
// hit; overwritten by the next build).
func (c *Cache) publish(key string, comp Compression, m *meta, write func(*os.File) error, written func()) (string, error) {
	f, err := c.tempFile(key)
	if err != nil {
		return "", err
	}
	if err := write(f); err != nil {
		abortTemp(f)
		return "", err
	}
	if written != nil {
		written()
	}
	bp := c.blobPath(key, comp)
	os.Remove(bp + ".meta") // a stale sidecar must never describe the new blob
	if err := commitTemp(f, bp); err != nil {
		return "", fmt.Errorf("store blob: %w", err)
	}
	st, err := statPath(bp)
	if err != nil {
		return "", err
	}
	m.Size, m.Dev, m.Ino, m.MtimeNS, m.Created = st.Size, st.Dev, st.Ino, st.MtimeNS, time.Now().Unix()
	if err := writeFileAtomic(c, bp+".meta", mustJSON(m)); err != nil {
		return "", err
	}
	return bp, nil
}

func (c *Cache) readIndex(statKey string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "index", statKey))
	if err != nil {
		return "", false
	}
	k := strings.TrimSpace(string(b))
	if len(k) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(k); err != nil {
		return "", false
	}
	return k, true
}

func (c *Cache) writeIndex(statKey, key string) error {
	return writeFileAtomic(c, filepath.Join(c.Dir, "index", statKey), []byte(key+"\n"))
}

// BlobInfo describes one cached blob for --list.
type BlobInfo struct {
	Path     string
	Key      string
	Kind     string
	Size     int64
	Created  time.Time
	LastUsed time.Time
}

// List returns the cached blobs, most recently used first.
func (c *Cache) List() ([]BlobInfo, error) {
	ents, err := os.ReadDir(filepath.Join(c.Dir, "blobs"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list cache: %w", err)
	}
	var out []BlobInfo
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, ".meta") {
			continue
		}
		mp := filepath.Join(c.Dir, "blobs", name)
		m, err := readMeta(mp)
		if err != nil {
			continue
		}
		mst, err := os.Stat(mp)
		if err != nil {
			continue
		}
		bp := strings.TrimSuffix(mp, ".meta")
		if _, err := os.Stat(bp); err != nil {
			continue
		}
		out = append(out, BlobInfo{Path: bp, Key: m.Key, Kind: m.Kind, Size: m.Size,
			Created: time.Unix(m.Created, 0), LastUsed: mst.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.After(out[j].LastUsed)
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

// GCResult reports what --gc removed.
type GCResult struct {
	Removed      int
	FreedBytes   int64
	Kept         int
	KeptBytes    int64
	SkippedInUse int
}

// GC removes least recently used blobs until at most keep blobs (keep < 0:
// no limit) totalling at most maxSize bytes (maxSize < 0: no limit)
// remain, plus temporary files of killed builders (see sweepTmp), blobs without a sidecar, and index entries whose blob is
// gone. A blob whose key is locked (being built or used by a build) is
// skipped.
func (c *Cache) GC(keep int, maxSize int64) (GCResult, error) {
	var r GCResult
	blobs, err := c.List()
	if err != nil {
		return r, err
	}
	var total int64
	for i, b := range blobs {
		over := (keep >= 0 && r.Kept >= keep) || (maxSize >= 0 && total+b.Size > maxSize)
		if !over {
			r.Kept++
			r.KeptBytes += b.Size
			total += b.Size
			continue
		}
		unlock, ok := c.tryLock(b.Key)
		if !ok {
			r.SkippedInUse++
			continue
		}
		os.Remove(b.Path + ".meta")
		os.Remove(b.Path)
		os.Remove(filepath.Join(c.Dir, "locks", b.Key+".lock"))
		unlock()
		r.Removed++
		r.FreedBytes += blobs[i].Size
	}
	c.sweep()
	return r, nil
}

// sweep removes debris: old temporary files, sidecar-less blobs, dangling
// index entries.
func (c *Cache) sweep() {
	c.sweepTmp()
	cutoff := time.Now().Add(-time.Hour)
	live := map[string]bool{}
	if ents, err := os.ReadDir(filepath.Join(c.Dir, "blobs")); err == nil {
		for _, de := range ents {
			n := de.Name()
			p := filepath.Join(c.Dir, "blobs", n)
			if strings.HasSuffix(n, ".meta") {
				continue
			}
			if _, err := os.Stat(p + ".meta"); err != nil {
				if info, err := de.Info(); err == nil && info.ModTime().Before(cutoff) {
					os.Remove(p)
				}
				continue
			}
			live[n[:min(64, len(n))]] = true
		}
	}
	if ents, err := os.ReadDir(filepath.Join(c.Dir, "index")); err == nil {
		for _, de := range ents {
			if k, ok := c.readIndex(de.Name()); !ok || !live[k] {
				os.Remove(filepath.Join(c.Dir, "index", de.Name()))
			}
		}
	}
	// Lock files nobody holds; lock() re-checks the inode after locking,
	// so removing one under a waiter is safe.
	if ents, err := os.ReadDir(filepath.Join(c.Dir, "locks")); err == nil {
		for _, de := range ents {
			key, ok := strings.CutSuffix(de.Name(), ".lock")
			if !ok {
				continue
			}
			if unlock, ok := c.tryLock(key); ok {
				os.Remove(filepath.Join(c.Dir, "locks", de.Name()))
				unlock()
			}
		}
	}
}
