package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ktstr-go/ktstr/pkg/elfdeps"
)

// Builder builds initramfs blobs, through a cache when Cache is set.
type Builder struct {
	// Cache is nil for --no-cache.
	Cache *Cache
	// Version is the tool's version; it is part of every key.
	Version string
	// Verify forces a full hash check of every cached blob used.
	Verify bool
	// Log, if not nil, gets one line per cache decision ("hit base KEY",
	// "built base KEY", ...).
	Log func(format string, a ...any)
	// Progress, if not nil, is told about long phases.
	Progress *Progress
	// Resolver resolves shared libraries; nil means elfdeps.NewResolver().
	Resolver *elfdeps.Resolver
}

// Result is a built or cached initramfs.
type Result struct {
	// Path is the concatenated blob (base part then run part).
	Path string
	// Key is the content key of Path.
	Key string
	// BaseKey and RunKey are the parts' content keys; BasePath and
	// RunPath their cached blobs (set by Parts).
	BaseKey, RunKey   string
	BasePath, RunPath string
}

func (b *Builder) logf(format string, a ...any) {
	if b.Log != nil {
		b.Log(format, a...)
	}
}

type prepared struct {
	spec    *Spec
	plan    *plan
	baseKey string
	runKey  string
	key     string
}

// prepare plans the parts and computes their keys, hashing host files only
// when the stat-keyed index has no entry for their current revisions.
func (b *Builder) prepare(spec *Spec) (*prepared, error) {
	if spec.Compression == "" {
		spec.Compression = DefaultCompression
	}
	if _, err := ParseCompression(string(spec.Compression)); err != nil {
		return nil, err
	}
	res := b.Resolver
	if res == nil {
		var err error
		if res, err = elfdeps.NewResolver(); err != nil {
			return nil, err
		}
	}
	pl, err := makePlan(spec, res)
	if err != nil {
		return nil, err
	}
	comp := spec.Compression
	p := &prepared{spec: spec, plan: pl}
	p.runKey = contentKey("run", b.Version, comp, pl.run)
	sk := statKey("base", b.Version, comp, pl.base)
	hash := func() error {
		b.Progress.Phase("hashing inputs", totalSize(pl.base))
		defer b.Progress.Done()
		return hashFiles(pl.base, b.Progress.Set)
	}
	if b.Cache == nil {
		if err := hash(); err != nil {
			return nil, err
		}
		p.baseKey = contentKey("base", b.Version, comp, pl.base)
	} else if k, ok := b.Cache.readIndex(sk); ok {
		p.baseKey = k
	} else {
		// One process hashes a given set of revisions; the others wait
		// and read its index entry.
		unlock, err := b.Cache.lock("stat-" + sk)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if k, ok := b.Cache.readIndex(sk); ok {
			p.baseKey = k
		} else {
			if err := hash(); err != nil {
				return nil, err
			}
			p.baseKey = contentKey("base", b.Version, comp, pl.base)
			if err := b.Cache.writeIndex(sk, p.baseKey); err != nil {
				return nil, err
			}
			b.logf("indexed base %s", p.baseKey)
		}
	}
	p.key = finalKey(b.Version, comp, p.baseKey, p.runKey)
	return p, nil
}

func totalSize(es []Entry) int64 {
	var n int64
	for i := range es {
		n += es[i].size()
	}
	return n
}

// Key returns the content key of the blob Build would give, building
// nothing (it may hash inputs and record them in the index).
func (b *Builder) Key(spec *Spec) (string, error) {
	p, err := b.prepare(spec)
	if err != nil {
		return "", err
	}
	return p.key, nil
}

// Build returns a cached blob for spec, building what is missing. It needs
// a Cache; see WriteTo for building without one.
func (b *Builder) Build(spec *Spec) (*Result, error) {
	if b.Cache == nil {
		return nil, fmt.Errorf("Build needs a cache; use WriteTo")
	}
	p, err := b.prepare(spec)
	if err != nil {
		return nil, err
	}
	r := &Result{Key: p.key, BaseKey: p.baseKey, RunKey: p.runKey}
	comp := spec.Compression
	if path, _, ok := b.Cache.lookup(p.key, comp, b.Verify); ok {
		b.logf("hit full %s", p.key)
		r.Path = path
		return r, nil
	}
	unlock, err := b.Cache.lock(p.key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if path, _, ok := b.Cache.lookup(p.key, comp, b.Verify); ok {
		b.logf("hit full %s (after waiting)", p.key)
		r.Path = path
		return r, nil
	}
	if r.BasePath, r.RunPath, err = b.parts(p); err != nil {
		return nil, err
	}
	r.Path, _, err = b.Cache.store(p.key, "full", comp, []string{p.baseKey, p.runKey}, func(w io.Writer) error {
		for _, part := range []string{r.BasePath, r.RunPath} {
			if err := appendFile(w, part); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.logf("built full %s", p.key)
	return r, nil
}

// Parts returns the two cached parts for spec (for a VMM given them as a
// list), building what is missing; Result.Path is left empty.
func (b *Builder) Parts(spec *Spec) (*Result, error) {
	if b.Cache == nil {
		return nil, fmt.Errorf("Parts needs a cache")
	}
	p, err := b.prepare(spec)
	if err != nil {
		return nil, err
	}
	r := &Result{Key: p.key, BaseKey: p.baseKey, RunKey: p.runKey}
	r.BasePath, r.RunPath, err = b.parts(p)
	return r, err
}

func (b *Builder) parts(p *prepared) (basePath, runPath string, err error) {
	basePath, err = b.part("base", p.baseKey, p.spec.Compression, p.plan.base)
	if err != nil {
		return "", "", err
	}
	runPath, err = b.part("run", p.runKey, p.spec.Compression, p.plan.run)
	return basePath, runPath, err
}

func (b *Builder) part(kind, key string, comp Compression, es []Entry) (string, error) {
	if path, _, ok := b.Cache.lookup(key, comp, b.Verify); ok {
		b.logf("hit %s %s", kind, key)
		return path, nil
	}
	unlock, err := b.Cache.lock(key)
	if err != nil {
		return "", err
	}
	defer unlock()
	if path, _, ok := b.Cache.lookup(key, comp, b.Verify); ok {
		b.logf("hit %s %s (after waiting)", kind, key)
		return path, nil
	}
	path, _, err := b.Cache.store(key, kind, comp, nil, func(w io.Writer) error {
		return b.writePart(w, kind, comp, es)
	})
	if err != nil {
		return "", err
	}
	b.logf("built %s %s", kind, key)
	return path, nil
}

func (b *Builder) writePart(w io.Writer, kind string, comp Compression, es []Entry) error {
	b.Progress.Phase("packing "+kind+" part", totalSize(es))
	defer b.Progress.Done()
	bw := bufio.NewWriterSize(w, 1<<20)
	cw, err := comp.compressor(bw)
	if err != nil {
		return err
	}
	if err := WriteArchive(cw, es, b.Progress.Set); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	return bw.Flush()
}

// WriteTo builds spec without the cache and writes the concatenated blob
// to w; it returns the blob's key.
func (b *Builder) WriteTo(w io.Writer, spec *Spec) (string, error) {
	nb := *b
	nb.Cache = nil
	p, err := nb.prepare(spec)
	if err != nil {
		return "", err
	}
	if err := nb.writePart(w, "base", spec.Compression, p.plan.base); err != nil {
		return "", err
	}
	if err := nb.writePart(w, "run", spec.Compression, p.plan.run); err != nil {
		return "", err
	}
	return p.key, nil
}

func appendFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// CopyAtomic copies src to dst through a temporary file in dst's directory
// and a rename, so dst is never seen half written.
func CopyAtomic(src, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	err = appendFile(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}
