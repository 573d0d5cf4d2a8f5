package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

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
	var bm, rm *meta
	if r.BasePath, bm, err = b.part("base", p.baseKey, comp, p.plan.base); err != nil {
		return nil, err
	}
	if r.RunPath, rm, err = b.part("run", p.runKey, comp, p.plan.run); err != nil {
		return nil, err
	}
	r.Path, _, err = b.Cache.storeConcat(p.key, comp, []string{r.BasePath, r.RunPath}, []*meta{bm, rm})
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
	if r.BasePath, _, err = b.part("base", p.baseKey, p.spec.Compression, p.plan.base); err != nil {
		return nil, err
	}
	r.RunPath, _, err = b.part("run", p.runKey, p.spec.Compression, p.plan.run)
	return r, err
}

func (b *Builder) part(kind, key string, comp Compression, es []Entry) (string, *meta, error) {
	if path, m, ok := b.Cache.lookup(key, comp, b.Verify); ok {
		b.logf("hit %s %s", kind, key)
		return path, m, nil
	}
	unlock, err := b.Cache.lock(key)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	if path, m, ok := b.Cache.lookup(key, comp, b.Verify); ok {
		b.logf("hit %s %s (after waiting)", kind, key)
		return path, m, nil
	}
	path, m, err := b.Cache.store(key, kind, comp, nil, func(w io.Writer) error {
		return b.writePart(w, kind, comp, es)
	})
	if err != nil {
		return "", nil, err
	}
	b.logf("built %s %s", kind, key)
	return path, m, nil
}

// Parts larger than chunkThreshold bytes of file data are written as a
// sequence of complete cpio archives (each with its trailer), split at
// entry boundaries after at least chunkSize bytes, each compressed on its
// own and in parallel; the kernel unpacks concatenated archives in order.
// (It does not accept one archive split across compressed streams: "junk
// at the end of compressed archive".) The split depends on the entries
// alone, never on the number of CPUs, so the bytes stay reproducible.
const (
	chunkThreshold = 16 << 20
	chunkSize      = 8 << 20
)

// chunks splits sorted entries into runs as described above; an
// uncompressed part is never split (there is nothing to parallelize).
func chunks(es []Entry, comp Compression) [][]Entry {
	if comp == None || totalSize(es) <= chunkThreshold {
		return [][]Entry{es}
	}
	var out [][]Entry
	start := 0
	var n int64
	for i := range es {
		n += es[i].size()
		if n >= chunkSize && i+1 < len(es) {
			out = append(out, es[start:i+1])
			start, n = i+1, 0
		}
	}
	return append(out, es[start:])
}

func (b *Builder) writePart(w io.Writer, kind string, comp Compression, es []Entry) error {
	b.Progress.Phase("packing "+kind+" part", totalSize(es))
	defer b.Progress.Done()
	cs := chunks(es, comp)
	var done atomic.Int64
	compress := func(dst io.Writer, chunk []Entry, firstIno int64) error {
		cw, err := comp.compressor(dst)
		if err != nil {
			return err
		}
		var last int64
		if err := writeArchive(cw, chunk, firstIno, func(n int64) {
			b.Progress.Set(done.Add(n - last))
			last = n
		}); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return fmt.Errorf("compress: %w", err)
		}
		return nil
	}
	if len(cs) == 1 {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := compress(bw, es, 1); err != nil {
			return err
		}
		return bw.Flush()
	}
	// At most GOMAXPROCS chunks are in flight (compressing or waiting to
	// be written), which bounds memory to that many compressed chunks.
	type job struct {
		buf  spool
		err  error
		done chan struct{}
	}
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	order := make(chan *job, len(cs))
	go func() {
		ino := int64(1)
		for _, c := range cs {
			j := &job{done: make(chan struct{})}
			sem <- struct{}{}
			order <- j
			go func(c []Entry, ino int64) {
				j.err = compress(&j.buf, c, ino)
				close(j.done)
			}(c, ino)
			ino += int64(len(c))
		}
	}()
	var firstErr error
	for range cs {
		j := <-order
		<-j.done
		if firstErr == nil {
			if j.err != nil {
				firstErr = j.err
			} else if err := j.buf.copyTo(w); err != nil {
				firstErr = err
			}
		}
		j.buf.close()
		<-sem
	}
	return firstErr
}

// spool holds a compressed chunk until its turn to be written: in memory
// up to spoolMemory bytes, then in an unlinked temporary file, so a chunk
// made of one huge file does not need its size in RAM.
type spool struct {
	mem  bytes.Buffer
	file *os.File
	err  error
}

const spoolMemory = 32 << 20

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.file == nil && s.mem.Len()+len(p) <= spoolMemory {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "ktstr-mkinitramfs-chunk-*")
		if err != nil {
			s.err = fmt.Errorf("spool compressed chunk: %w", err)
			return 0, s.err
		}
		os.Remove(f.Name())
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			s.err = err
			return 0, err
		}
		s.mem = bytes.Buffer{}
	}
	n, err := s.file.Write(p)
	if err != nil {
		s.err = fmt.Errorf("spool compressed chunk: %w", err)
	}
	return n, s.err
}

func (s *spool) copyTo(w io.Writer) error {
	if s.file == nil {
		_, err := w.Write(s.mem.Bytes())
		return err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, s.file)
	return err
}

func (s *spool) close() {
	s.mem = bytes.Buffer{}
	if s.file != nil {
		s.file.Close()
	}
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

// WriteOutput writes a file at dst through write, atomically: into a
// locked temporary file in dst's directory (see TempMarker), then renamed
// over dst. dst must be absent or a regular file (see CheckOutputPath); on
// any error it is left exactly as it was. Stale temporary files of earlier
// killed writes to the same dst are removed first.
func WriteOutput(dst string, write func(io.Writer) error) error {
	real, err := CheckOutputPath(dst)
	if err != nil {
		return &OutputError{err}
	}
	dir, prefix := filepath.Dir(real), "."+filepath.Base(real)
	SweepTemps(dir, prefix)
	f, err := createTemp(dir, prefix)
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := write(f); err != nil {
		abortTemp(f)
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		abortTemp(f)
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return commitTemp(f, real)
}

// OutputError is an output path that cannot be written to (not a regular
// file, no such directory).
type OutputError struct{ Err error }

func (e *OutputError) Error() string { return e.Err.Error() }
func (e *OutputError) Unwrap() error { return e.Err }

// CopyAtomic copies src to dst with WriteOutput, so dst is never seen half
// written.
func CopyAtomic(src, dst string) error {
	return WriteOutput(dst, func(w io.Writer) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		return nil
	})
}
