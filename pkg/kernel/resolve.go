package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ResolveOptions tune Resolve; the zero value uses the process's
// environment.
type ResolveOptions struct {
	CacheDir string // "": DefaultCacheDir()
	Cwd      string // "": the working directory
	Release  string // "": uname -r
	Root     string // prefix of /lib/modules and /boot (tests); "": /
}

// ErrNotFound means a spec (or, for an empty spec, every default place)
// named no kernel.
var ErrNotFound = errors.New("no kernel found")

// Resolve finds the kernel spec names, in this order:
//
//  1. spec is an existing path: a file is the bzImage itself; a directory
//     is a source tree (its arch/x86/boot/bzImage, with vmlinux,
//     System.map and .config at its top) or a directory holding a
//     bzImage (a cache entry);
//  2. spec is a cache key, a unique key prefix or a version prefix in
//     the kernel cache (ktstr-kernel list);
//  3. spec is empty: ./linux and ../linux (built source trees),
//     /lib/modules/RELEASE/build (a built tree), /boot/vmlinuz-RELEASE,
//     with RELEASE the running kernel's (uname -r).
//
// Companions (vmlinux, System.map, config) are filled in as Companions
// finds them. For a cache entry, release marks it in use (a shared
// flock that ktstr-kernel gc respects) until called; it is never nil.
func Resolve(spec string, o ResolveOptions) (k Kernel, release func(), err error) {
	noop := func() {}
	cwd := o.Cwd
	if cwd == "" {
		if cwd, err = os.Getwd(); err != nil {
			return Kernel{}, noop, err
		}
	}
	if spec != "" {
		p := spec
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if st, err := os.Stat(p); err == nil {
			k, err := fromPath(p, st)
			return k, noop, err
		} else if !errors.Is(err, os.ErrNotExist) {
			return Kernel{}, noop, err
		}
		if strings.ContainsRune(spec, '/') || strings.HasPrefix(spec, ".") {
			return Kernel{}, noop, fmt.Errorf("%w: %s does not exist", ErrNotFound, spec)
		}
		return fromCache(spec, o)
	}
	rel := o.Release
	if rel == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err == nil {
			rel = unix.ByteSliceToString(u.Release[:])
		}
	}
	var tried []string
	for _, d := range []string{filepath.Join(cwd, "linux"), filepath.Join(filepath.Dir(cwd), "linux"), filepath.Join(o.Root, "/lib/modules", rel, "build")} {
		bz := filepath.Join(d, "arch", "x86", "boot", "bzImage")
		tried = append(tried, bz)
		if isFile(bz) {
			k := Companions(bz)
			k.How = "source tree " + d
			return k, noop, nil
		}
	}
	bz := filepath.Join(o.Root, "/boot", "vmlinuz-"+rel)
	tried = append(tried, bz)
	if isFile(bz) {
		if f, err := os.Open(bz); err != nil {
			return Kernel{}, noop, fmt.Errorf("%s: %w (distributions often make it root-only; copy it or pass --kernel)", bz, err)
		} else {
			f.Close()
		}
		k := Companions(bz)
		k.How = "running kernel's /boot image"
		return k, noop, nil
	}
	return Kernel{}, noop, fmt.Errorf("%w in the default places (none of %s exists): build one with ktstr-kernel build SRC, or name one", ErrNotFound, strings.Join(tried, ", "))
}

func fromPath(p string, st os.FileInfo) (Kernel, error) {
	switch {
	case st.Mode().IsRegular():
		k := Companions(p)
		k.How = "path"
		return k, nil
	case st.IsDir():
		if bz := filepath.Join(p, "arch", "x86", "boot", "bzImage"); isFile(bz) {
			k := Companions(bz)
			k.How = "source tree " + p
			return k, nil
		}
		if bz := filepath.Join(p, FileBzImage); isFile(bz) {
			k := Companions(bz)
			k.How = "directory " + p
			return k, nil
		}
		if isFile(filepath.Join(p, "Makefile")) && isFile(filepath.Join(p, "Kconfig")) {
			return Kernel{}, fmt.Errorf("%w: source tree %s has no arch/x86/boot/bzImage: build it (ktstr-kernel build %s)", ErrNotFound, p, p)
		}
		return Kernel{}, fmt.Errorf("%w: directory %s holds neither arch/x86/boot/bzImage nor bzImage", ErrNotFound, p)
	}
	return Kernel{}, fmt.Errorf("%s: not a regular file or directory", p)
}

func fromCache(spec string, o ResolveOptions) (Kernel, func(), error) {
	noop := func() {}
	dir := o.CacheDir
	if dir == "" {
		var err error
		if dir, err = DefaultCacheDir(); err != nil {
			return Kernel{}, noop, err
		}
	}
	c := &Cache{Dir: dir}
	// A gc or a replacing publish may remove the entry between Lookup and
	// Use; look again once.
	var lastErr error
	for try := 0; try < 2; try++ {
		e, err := c.Lookup(spec)
		if err != nil {
			if errors.Is(err, ErrNoEntry) {
				return Kernel{}, noop, fmt.Errorf("%w: %q is not a file, a directory or a kernel in the cache %s (ktstr-kernel list)", ErrNotFound, spec, dir)
			}
			return Kernel{}, noop, err
		}
		release, err := c.Use(e.Key)
		if err != nil {
			lastErr = err
			continue
		}
		return e.Kernel(), release, nil
	}
	return Kernel{}, noop, lastErr
}
