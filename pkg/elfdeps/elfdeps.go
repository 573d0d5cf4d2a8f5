package elfdeps

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Info is what the loader needs to know about one ELF object.
type Info struct {
	Class   elf.Class
	Machine elf.Machine
	// Interp is PT_INTERP, empty for static binaries and libraries.
	Interp  string
	Needed  []string
	RPath   []string // DT_RPATH entries, unexpanded
	RunPath []string // DT_RUNPATH entries, unexpanded
	// Dynamic reports whether the object has a dynamic section.
	Dynamic bool
}

// ErrNotELF is returned by Parse for input that is not an ELF file.
var ErrNotELF = errors.New("not an ELF file")

// Parse reads the loader-relevant parts of an ELF object. Input that does
// not start with the ELF magic gives ErrNotELF; a malformed ELF file gives
// another error. It never panics on hostile input.
func Parse(r io.ReaderAt) (info *Info, err error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, ErrNotELF
	}
	defer func() {
		// debug/elf has had panics on corrupt input; never let one escape.
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("malformed ELF: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: %w", err)
	}
	defer f.Close()
	info = &Info{Class: f.Class, Machine: f.Machine}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			// Bounded: an interpreter path longer than PATH_MAX is bogus.
			if p.Filesz == 0 || p.Filesz > 4096 {
				return nil, fmt.Errorf("malformed ELF: PT_INTERP of %d bytes", p.Filesz)
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("malformed ELF: read PT_INTERP: %w", err)
			}
			info.Interp = string(bytes.TrimRight(b, "\x00"))
		case elf.PT_DYNAMIC:
			info.Dynamic = true
		}
	}
	if !info.Dynamic {
		return info, nil
	}
	if info.Needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("malformed ELF: DT_NEEDED: %w", err)
	}
	rp, err := f.DynString(elf.DT_RPATH)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: DT_RPATH: %w", err)
	}
	runp, err := f.DynString(elf.DT_RUNPATH)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: DT_RUNPATH: %w", err)
	}
	info.RPath = splitPath(rp)
	info.RunPath = splitPath(runp)
	return info, nil
}

func splitPath(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, d := range strings.Split(v, ":") {
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

// ParseFile is Parse on a file by path.
func ParseFile(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Lib is one file the binary needs at run time.
type Lib struct {
	// Path is the canonical host path (symlinks resolved): the file to pack.
	Path string
	// Aliases are the other host paths through which the loader reaches
	// it (the path it was found at, the interpreter path), sorted; they
	// should exist in the guest as symlinks to Path.
	Aliases []string
	// Name is the DT_NEEDED name or interpreter path that first asked for it.
	Name string
	// NeededBy is the object that first asked for it.
	NeededBy string
	// Interp reports whether it is the ELF interpreter.
	Interp bool
	// Dir is the directory it was found in (the non-canonical one), for
	// callers that must tell the guest's loader about extra directories.
	Dir string
}

// NotFoundError is a DT_NEEDED entry no search directory has.
type NotFoundError struct {
	Name, NeededBy string
	Searched       []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("library %s needed by %s not found (searched %s): install it or add its directory to /etc/ld.so.conf", e.Name, e.NeededBy, strings.Join(e.Searched, ":"))
}

// Resolver resolves dependency closures. The zero value is not usable; use
// NewResolver.
type Resolver struct {
	confDirs    []string
	defaultDirs []string
	// Lib is what $LIB expands to; Platform what $PLATFORM expands to.
	lib, platform string
}

// DefaultDirs are the loader's built-in directories on x86-64 Debian-like
// and Fedora-like hosts, searched after the ld.so.conf directories.
var defaultDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// NewResolver reads the host's /etc/ld.so.conf (with includes) once.
func NewResolver() (*Resolver, error) {
	conf, err := LoadLdSoConf("/etc/ld.so.conf")
	if err != nil {
		return nil, err
	}
	return NewResolverDirs(conf, defaultDirs), nil
}

// NewResolverDirs builds a resolver with explicit ld.so.conf directories
// and default directories (tests, other roots).
func NewResolverDirs(conf, defaults []string) *Resolver {
	return &Resolver{confDirs: conf, defaultDirs: defaults, lib: "lib/x86_64-linux-gnu", platform: "x86_64"}
}

// IsStandardDir reports whether the guest's loader searches dir without
// being told (a default directory).
func (r *Resolver) IsStandardDir(dir string) bool {
	for _, d := range r.defaultDirs {
		if d == dir {
			return true
		}
	}
	return false
}

type object struct {
	path string // path it was opened by
	info *Info
}

// Resolve returns every library and the interpreter that bin needs,
// sorted by Path. A static binary or a non-ELF file gives nil, nil.
func (r *Resolver) Resolve(bin string) ([]Lib, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	info, err := ParseFile(abs)
	if errors.Is(err, ErrNotELF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	if !info.Dynamic && info.Interp == "" {
		return nil, nil
	}
	libs := map[string]*Lib{} // by canonical path
	add := func(found, name, by, dir string, interp bool) (string, bool, error) {
		real, err := filepath.EvalSymlinks(found)
		if err != nil {
			return "", false, fmt.Errorf("resolve %s: %w", found, err)
		}
		l, ok := libs[real]
		if !ok {
			l = &Lib{Path: real, Name: name, NeededBy: by, Interp: interp, Dir: dir}
			libs[real] = l
		}
		if found != real && !contains(l.Aliases, found) {
			l.Aliases = append(l.Aliases, found)
		}
		l.Interp = l.Interp || interp
		return real, !ok, nil
	}
	exe := object{path: abs, info: info}
	var queue []object
	if info.Interp != "" {
		p := info.Interp
		if _, err := os.Stat(p); err != nil {
			return nil, &NotFoundError{Name: p, NeededBy: bin, Searched: []string{"(ELF interpreter)"}}
		}
		real, isNew, err := add(p, p, bin, filepath.Dir(p), true)
		if err != nil {
			return nil, err
		}
		if isNew {
			ii, err := ParseFile(real)
			if err != nil {
				return nil, fmt.Errorf("interpreter %s: %w", real, err)
			}
			queue = append(queue, object{path: p, info: ii})
		}
	}
	queue = append(queue, exe)
	byName := map[string]string{} // soname -> found path (loader loads a soname once)
	for len(queue) > 0 {
		obj := queue[0]
		queue = queue[1:]
		for _, name := range obj.info.Needed {
			found, ok := byName[name]
			if !ok {
				found, err = r.find(name, obj, exe)
				if err != nil {
					return nil, err
				}
				byName[name] = found
			}
			real, isNew, err := add(found, name, obj.path, filepath.Dir(found), false)
			if err != nil {
				return nil, err
			}
			if isNew {
				li, err := ParseFile(real)
				if err != nil {
					return nil, fmt.Errorf("library %s: %w", real, err)
				}
				queue = append(queue, object{path: found, info: li})
			}
		}
	}
	out := make([]Lib, 0, len(libs))
	for _, l := range libs {
		sort.Strings(l.Aliases)
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// find locates one DT_NEEDED name for obj, in the loader's order.
func (r *Resolver) find(name string, obj, exe object) (string, error) {
	if strings.ContainsRune(name, '/') {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(obj.path), p)
		}
		if r.compatible(p, exe.info) {
			return p, nil
		}
		return "", &NotFoundError{Name: name, NeededBy: obj.path, Searched: []string{p}}
	}
	var dirs []string
	if len(obj.info.RunPath) == 0 {
		dirs = append(dirs, r.expand(obj.info.RPath, obj.path)...)
		if obj.path != exe.path && len(exe.info.RunPath) == 0 {
			dirs = append(dirs, r.expand(exe.info.RPath, exe.path)...)
		}
	}
	dirs = append(dirs, r.expand(obj.info.RunPath, obj.path)...)
	dirs = append(dirs, r.confDirs...)
	dirs = append(dirs, r.defaultDirs...)
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if r.compatible(p, exe.info) {
			return p, nil
		}
	}
	return "", &NotFoundError{Name: name, NeededBy: obj.path, Searched: dedupe(dirs)}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// compatible reports whether p is a regular ELF file of the executable's
// class and machine (the loader skips others, e.g. i386 libraries).
func (r *Resolver) compatible(p string, want *Info) bool {
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	info, err := ParseFile(p)
	if err != nil {
		return false
	}
	return info.Class == want.Class && info.Machine == want.Machine
}

// expand substitutes $ORIGIN, $LIB and $PLATFORM (also in ${...} form) in
// search-path entries of the object at path; relative entries are taken
// relative to the working directory, as the loader does.
func (r *Resolver) expand(entries []string, path string) []string {
	origin := filepath.Dir(path)
	var out []string
	for _, e := range entries {
		for _, kv := range [][2]string{{"ORIGIN", origin}, {"LIB", r.lib}, {"PLATFORM", r.platform}} {
			e = strings.ReplaceAll(e, "${"+kv[0]+"}", kv[1])
			e = strings.ReplaceAll(e, "$"+kv[0], kv[1])
		}
		out = append(out, filepath.Clean(e))
	}
	return out
}
