package kernel

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
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/cachedir"
	"github.com/ktstr-go/ktstr/pkg/lockfile"
)

// Cache is the content-addressed store of built kernels. Layout under Dir:
//
//	entries/KEY/            one kernel: bzImage, vmlinux, System.map,
//	                        config and meta.json; appears whole (a
//	                        directory renamed into place), never half
//	locks/KEY.lock          users hold it shared (flock) while they use
//	                        the entry; gc removes an entry only under an
//	                        exclusive lock it got without waiting
//	locks/KEY.publish       serializes publishers of one key
//	tmp/                    entries being written, and entries on their
//	                        way out
//
// KEY is VERSION-HASH: the source's `make kernelversion` and the first 12
// hex digits of the SHA-256 of the final .config.
type Cache struct {
	Dir string
}

// Files an entry holds; bzImage and config are required.
const (
	FileBzImage   = "bzImage"
	FileVmlinux   = "vmlinux"
	FileSystemMap = "System.map"
	FileConfig    = "config"
	fileMeta      = "meta.json"
)

// DefaultCacheDir is $KTSTR_KERNEL_CACHE_DIR, else
// $XDG_CACHE_HOME/ktstr/kernels, else ~/.cache/ktstr/kernels.
func DefaultCacheDir() (string, error) { return cachedir.Dir("KTSTR_KERNEL_CACHE_DIR", "kernels") }

// OpenCache creates the cache's directories if needed.
func OpenCache(dir string) (*Cache, error) {
	for _, sub := range []string{"entries", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create kernel cache: %w", err)
		}
	}
	return &Cache{Dir: dir}, nil
}

// Entry is one cached kernel.
type Entry struct {
	Key          string    `json:"key"`
	Version      string    `json:"version"`
	ConfigSHA256 string    `json:"config_sha256"`
	ImageSHA256  string    `json:"bzimage_sha256"`
	Source       string    `json:"source,omitempty"` // the tree it was built from
	Created      time.Time `json:"created"`
	Dir          string    `json:"-"`
	Size         int64     `json:"-"`
	LastUsed     time.Time `json:"-"`
}

// Kernel returns the entry's files as a Kernel.
func (e Entry) Kernel() Kernel {
	k := Kernel{BzImage: filepath.Join(e.Dir, FileBzImage), How: "cache", Entry: e.Key}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&k.Vmlinux, FileVmlinux}, {&k.SystemMap, FileSystemMap}, {&k.Config, FileConfig}} {
		if p := filepath.Join(e.Dir, f.name); isFile(p) {
			*f.dst = p
		}
	}
	return k
}

// Key is the cache key of a kernel of this version built with this .config.
func Key(version string, config []byte) string {
	h := sha256.Sum256(config)
	return sanitizeVersion(version) + "-" + hex.EncodeToString(h[:])[:12]
}

func sanitizeVersion(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return "unknown"
	}
	b := []byte(v)
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

func validKey(k string) bool {
	return k != "" && k == sanitizeVersion(k) && !strings.HasPrefix(k, ".") && len(k) <= 80
}

func (c *Cache) entryDir(key string) string { return filepath.Join(c.Dir, "entries", key) }

// Publish copies a kernel's files (name -> source path; FileBzImage and
// FileConfig required) into the cache under Key(version, config) and
// returns the entry. The copy is made in tmp/ and renamed into place, so
// a reader sees the whole entry or none. If the key is already cached
// with the same bzImage, the existing entry is kept; with a different one
// (the source changed but not its version or configuration) the new entry
// replaces it with one atomic exchange, and processes that already opened
// the old files keep reading them.
func (c *Cache) Publish(version string, files map[string]string, source string) (Entry, error) {
	for _, req := range []string{FileBzImage, FileConfig} {
		if files[req] == "" {
			return Entry{}, fmt.Errorf("publish: no %s", req)
		}
	}
	cfgData, err := os.ReadFile(files[FileConfig])
	if err != nil {
		return Entry{}, fmt.Errorf("publish: %w", err)
	}
	if _, err := ParseConfig(strings.NewReader(string(cfgData))); err != nil {
		return Entry{}, fmt.Errorf("publish %s: %w", files[FileConfig], err)
	}
	key := Key(version, cfgData)
	cs := sha256.Sum256(cfgData)
	e := Entry{Key: key, Version: strings.TrimSpace(version), ConfigSHA256: hex.EncodeToString(cs[:]), Source: source, Created: time.Now().UTC()}
	tmp, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), key+".")
	if err != nil {
		return Entry{}, fmt.Errorf("publish: %w", err)
	}
	defer os.RemoveAll(tmp) // after a rename it holds nothing, or the replaced entry
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Entry{}, err
	}
	for _, name := range []string{FileBzImage, FileVmlinux, FileSystemMap, FileConfig} {
		src := files[name]
		if src == "" {
			continue
		}
		sum, err := copyFile(filepath.Join(tmp, name), src)
		if err != nil {
			return Entry{}, fmt.Errorf("publish %s: %w", name, err)
		}
		if name == FileBzImage {
			e.ImageSHA256 = sum
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, fileMeta), mustJSON(e), 0o644); err != nil {
		return Entry{}, fmt.Errorf("publish: %w", err)
	}
	unlock, err := lockfile.Lock(filepath.Join(c.Dir, "locks", key+".publish"), unix.LOCK_EX)
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	dst := c.entryDir(key)
	err = os.Rename(tmp, dst)
	if err != nil && (errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY)) {
		if old, rerr := readEntryMeta(dst); rerr == nil && old.ImageSHA256 == e.ImageSHA256 {
			return c.stat(key)
		}
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) {
			// No RENAME_EXCHANGE on this file system: move the old entry
			// out first (a resolve in between sees no entry and retries).
			out := tmp + ".old"
			if err = os.Rename(dst, out); err == nil {
				defer os.RemoveAll(out)
				err = os.Rename(tmp, dst)
			}
		}
	}
	if err != nil {
		return Entry{}, fmt.Errorf("publish %s: %w", key, err)
	}
	return c.stat(key)
}

// copyFile copies src to a new file dst (copy_file_range where the file
// system allows) and returns the content's SHA-256.
func copyFile(dst, src string) (string, error) {
	in, _, err := openRegular(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	// Hash what landed in the cache, not what was read before the copy.
	f, err := os.Open(dst)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // a plain struct
	}
	return append(b, '\n')
}

func readEntryMeta(dir string) (Entry, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileMeta))
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("%s: %w", filepath.Join(dir, fileMeta), err)
	}
	if !validKey(e.Key) || e.Key != filepath.Base(dir) {
		return Entry{}, fmt.Errorf("%s: key %q does not name its directory", filepath.Join(dir, fileMeta), e.Key)
	}
	return e, nil
}

// stat reads the entry's meta.json, size and last use.
func (c *Cache) stat(key string) (Entry, error) {
	dir := c.entryDir(key)
	e, err := readEntryMeta(dir)
	if err != nil {
		return Entry{}, err
	}
	e.Dir = dir
	if !isFile(filepath.Join(dir, FileBzImage)) {
		return Entry{}, fmt.Errorf("cache entry %s has no bzImage", key)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Entry{}, err
	}
	for _, de := range ents {
		if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
			e.Size += info.Size()
			if de.Name() == fileMeta {
				e.LastUsed = info.ModTime()
			}
		}
	}
	return e, nil
}

// List returns the cache's entries, most recently used first. Entries
// that cannot be read are skipped.
func (c *Cache) List() ([]Entry, error) {
	ents, err := os.ReadDir(filepath.Join(c.Dir, "entries"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list kernel cache: %w", err)
	}
	var out []Entry
	for _, de := range ents {
		if !de.IsDir() || !validKey(de.Name()) {
			continue
		}
		if e, err := c.stat(de.Name()); err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.After(out[j].LastUsed)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// ErrNoEntry means no cache entry matches a spec.
var ErrNoEntry = errors.New("no such kernel in the cache")

// Lookup finds the entry spec names: its exact key; else the newest
// built entry whose version is spec or starts with spec followed by "."
// or "-" (so "6.12" finds 6.12.0 and 6.12.3-rc1 but not 6.120); else the
// only entry whose key starts with spec.
func (c *Cache) Lookup(spec string) (Entry, error) {
	if spec == "" || strings.ContainsRune(spec, '/') {
		return Entry{}, fmt.Errorf("%w: %q", ErrNoEntry, spec)
	}
	if validKey(spec) {
		if e, err := c.stat(spec); err == nil {
			return e, nil
		}
	}
	all, err := c.List()
	if err != nil {
		return Entry{}, err
	}
	var best *Entry
	for i, e := range all {
		if e.Version == spec || strings.HasPrefix(e.Version, spec+".") || strings.HasPrefix(e.Version, spec+"-") {
			if best == nil || e.Created.After(best.Created) {
				best = &all[i]
			}
		}
	}
	if best != nil {
		return *best, nil
	}
	var hits []Entry
	for _, e := range all {
		if strings.HasPrefix(e.Key, spec) {
			hits = append(hits, e)
		}
	}
	switch len(hits) {
	case 0:
		return Entry{}, fmt.Errorf("%w: %q (ktstr-kernel list shows what is cached)", ErrNoEntry, spec)
	case 1:
		return hits[0], nil
	}
	var keys []string
	for _, h := range hits {
		keys = append(keys, h.Key)
	}
	return Entry{}, fmt.Errorf("%q matches several cached kernels (%s): give more of the key", spec, strings.Join(keys, ", "))
}

// Use marks the entry in use until release is called (or the process
// ends): a shared flock on its lock file, which gc will not remove it
// under. It also records the use (meta.json's mtime) for gc's LRU order.
// It fails if the entry was removed before the lock was taken.
func (c *Cache) Use(key string) (release func(), err error) {
	if !validKey(key) {
		return nil, fmt.Errorf("%w: bad key %q", ErrNoEntry, key)
	}
	release, err = lockfile.Lock(filepath.Join(c.Dir, "locks", key+".lock"), unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	meta := filepath.Join(c.entryDir(key), fileMeta)
	if !isFile(meta) {
		release()
		return nil, fmt.Errorf("%w: %s was removed (by gc?)", ErrNoEntry, key)
	}
	now := time.Now()
	_ = os.Chtimes(meta, now, now)
	return release, nil
}

// GCResult reports what GC did.
type GCResult struct {
	Removed      []string
	FreedBytes   int64
	Kept         int
	KeptBytes    int64
	SkippedInUse []string
}

// GC removes least recently used entries until at most keep entries
// (keep < 0: no limit) totalling at most maxSize bytes (maxSize < 0: no
// limit) remain, and debris older than an hour in tmp/ (left by killed
// publishers). An entry in use (its lock held shared) is never removed.
func (c *Cache) GC(keep int, maxSize int64) (GCResult, error) {
	var r GCResult
	all, err := c.List()
	if err != nil {
		return r, err
	}
	for _, e := range all {
		if (keep < 0 || r.Kept < keep) && (maxSize < 0 || r.KeptBytes+e.Size <= maxSize) {
			r.Kept++
			r.KeptBytes += e.Size
			continue
		}
		lp := filepath.Join(c.Dir, "locks", e.Key+".lock")
		unlock, ok := lockfile.TryLock(lp)
		if !ok {
			r.SkippedInUse = append(r.SkippedInUse, e.Key)
			r.Kept++
			r.KeptBytes += e.Size
			continue
		}
		out, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), "gc.")
		if err == nil {
			if err = os.Rename(e.Dir, filepath.Join(out, e.Key)); err == nil {
				os.Remove(lp)
			}
			os.RemoveAll(out)
		}
		unlock()
		if err != nil {
			return r, fmt.Errorf("remove %s: %w", e.Key, err)
		}
		r.Removed = append(r.Removed, e.Key)
		r.FreedBytes += e.Size
	}
	cutoff := time.Now().Add(-time.Hour)
	if ents, err := os.ReadDir(filepath.Join(c.Dir, "tmp")); err == nil {
		for _, de := range ents {
			if info, err := de.Info(); err == nil && info.ModTime().Before(cutoff) {
				os.RemoveAll(filepath.Join(c.Dir, "tmp", de.Name()))
			}
		}
	}
	return r, nil
}
