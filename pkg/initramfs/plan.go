package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/elfdeps"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
)

// Include is one --include: a host file or directory and where it goes.
type Include struct {
	Host string
	// Archive is the absolute archive path; empty means "/" + base name.
	Archive string
}

// ParseInclude parses HOST[:ARCHIVE_PATH].
func ParseInclude(s string) (Include, error) {
	host, arch, _ := strings.Cut(s, ":")
	if host == "" {
		return Include{}, fmt.Errorf("--include %q: empty host path", s)
	}
	if arch != "" && !strings.HasPrefix(arch, "/") {
		return Include{}, fmt.Errorf("--include %q: archive path %q must be absolute", s, arch)
	}
	return Include{Host: host, Archive: arch}, nil
}

// Spec is everything that goes into one initramfs.
type Spec struct {
	// Init is the host path of the binary packed as /init.
	Init string
	// Scheduler is the scheduler binary ("" for an EEVDF baseline run)
	// and SchedulerArgs its arguments.
	Scheduler     string
	SchedulerArgs []string
	Includes      []Include
	// Busybox, if set, is packed as /bin/busybox with its applet links.
	Busybox string
	// Scenario is the scenario file's bytes (nil: the guest's default)
	// and ScenarioName the catalog name it came from, if any.
	Scenario     []byte
	ScenarioName string
	// Env and AttachTimeoutMS go into the run configuration.
	Env             map[string]string
	AttachTimeoutMS int
	Compression     Compression
}

// InputError is an input the user named that cannot be used (missing
// file, unresolvable library, path conflict).
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(format string, a ...any) error { return &InputError{fmt.Errorf(format, a...)} }

// layout collects entries by archive path and rejects conflicts.
type layout struct {
	byPath map[string]*Entry
}

func newLayout() *layout { return &layout{byPath: map[string]*Entry{}} }

func (l *layout) add(e Entry) error {
	e.Path = path.Clean(e.Path)
	if !path.IsAbs(e.Path) || e.Path == "/" {
		return inputErr("archive path %q (from %s) must be absolute and not /", e.Path, e.Origin)
	}
	if err := l.addParents(e.Path, e.Origin); err != nil {
		return err
	}
	if old, ok := l.byPath[e.Path]; ok {
		if old.Kind == KindDir && e.Kind == KindDir {
			if e.Perm != 0o755 { // an explicit mode wins over an implied parent
				old.Perm = e.Perm
			}
			return nil
		}
		if old.Kind == e.Kind && old.Src == e.Src && old.Target == e.Target && e.Kind != KindCharDev && string(old.Data) == string(e.Data) {
			return nil // the same thing asked for twice (a shared library)
		}
		return inputErr("archive path %s is wanted by both %s and %s: give one of them another --include archive path", e.Path, old.Origin, e.Origin)
	}
	l.byPath[e.Path] = &e
	return nil
}

func (l *layout) addParents(p, origin string) error {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if old, ok := l.byPath[d]; ok {
			if old.Kind != KindDir {
				return inputErr("archive path %s (from %s) is inside %s, which is a %v from %s", p, origin, d, old.Kind, old.Origin)
			}
			continue
		}
		l.byPath[d] = &Entry{Path: d, Kind: KindDir, Perm: 0o755, Origin: origin}
	}
	return nil
}

func (l *layout) entries() []Entry {
	out := make([]Entry, 0, len(l.byPath))
	for _, e := range l.byPath {
		out = append(out, *e)
	}
	sortEntries(out)
	return out
}

// skeleton is in every base part.
func addSkeleton(l *layout) error {
	for _, d := range []struct {
		p    string
		perm uint32
	}{{"/dev", 0o755}, {"/proc", 0o555}, {"/sys", 0o555}, {"/tmp", 0o1777}, {"/run", 0o755},
		{"/etc/ktstr", 0o755}, {path.Dir(runconfig.SchedulerPath), 0o755}, {"/bin", 0o755}} {
		if err := l.add(Entry{Path: d.p, Kind: KindDir, Perm: d.perm, Origin: "the archive skeleton"}); err != nil {
			return err
		}
	}
	return l.add(Entry{Path: "/dev/console", Kind: KindCharDev, Perm: 0o600, Major: 5, Minor: 1, Origin: "the archive skeleton"})
}

// planner turns a Spec into the base and run parts' entries.
type planner struct {
	res     *elfdeps.Resolver
	base    *layout
	libDirs map[string]bool // non-standard directories libraries came from
}

func (p *planner) addBinary(host, archivePath, origin string) error {
	st, err := os.Stat(host)
	if err != nil {
		return inputErr("%s %s: %v", origin, host, unwrapPathErr(err))
	}
	if !st.Mode().IsRegular() {
		return inputErr("%s %s: not a regular file", origin, host)
	}
	if err := p.addFile(host, archivePath, origin, 0o755); err != nil {
		return err
	}
	return p.addLibs(host, origin)
}

func (p *planner) addLibs(host, origin string) error {
	libs, err := p.res.Resolve(host)
	if err != nil {
		var nf *elfdeps.NotFoundError
		if errors.As(err, &nf) {
			return &InputError{fmt.Errorf("%s: %w", origin, err)}
		}
		return inputErr("%s %s: %v", origin, host, err)
	}
	for _, lib := range libs {
		by := "library of " + host
		if err := p.addFile(lib.Path, lib.Path, by, 0o755); err != nil {
			return err
		}
		for _, a := range lib.Aliases {
			if err := p.base.add(Entry{Path: a, Kind: KindSymlink, Target: lib.Path, Origin: by}); err != nil {
				return err
			}
		}
		if !lib.Interp && !p.res.IsStandardDir(lib.Dir) {
			p.libDirs[lib.Dir] = true
		}
	}
	return nil
}

// addFile adds a host regular file, statting it now (the stat is part of
// the fast cache key and is re-checked when the bytes are copied).
func (p *planner) addFile(host, archivePath, origin string, perm uint32) error {
	fst, err := statPath(host)
	if err != nil {
		return inputErr("%s %s: %v", origin, host, unwrapPathErr(err))
	}
	if perm == 0 {
		perm = fst.Mode & 0o7777
	}
	return p.base.add(Entry{Path: archivePath, Kind: KindFile, Perm: perm, Src: host, stat: fst, Origin: origin})
}

func (p *planner) addInclude(inc Include) error {
	origin := "--include " + inc.Host
	host := filepath.Clean(inc.Host)
	arch := inc.Archive
	if arch == "" {
		abs, err := filepath.Abs(host)
		if err != nil {
			return err
		}
		arch = "/" + filepath.Base(abs)
	}
	st, err := os.Lstat(host)
	if err != nil {
		return inputErr("%s: %v", origin, unwrapPathErr(err))
	}
	if st.Mode()&fs.ModeSymlink != 0 { // the top level is followed
		if st, err = os.Stat(host); err != nil {
			return inputErr("%s: %v", origin, unwrapPathErr(err))
		}
	}
	if !st.IsDir() {
		return p.includeFile(host, arch, origin, st)
	}
	return filepath.WalkDir(host, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return inputErr("%s: %v", origin, unwrapPathErr(err))
		}
		rel, err := filepath.Rel(host, hp)
		if err != nil {
			return err
		}
		ap := path.Join(arch, filepath.ToSlash(rel))
		info, err := os.Lstat(hp)
		if err != nil {
			return inputErr("%s: %v", origin, unwrapPathErr(err))
		}
		switch {
		case info.IsDir() && ap == "/":
			return nil // --include DIR:/ overlays the root, which exists
		case info.IsDir():
			return p.base.add(Entry{Path: ap, Kind: KindDir, Perm: uint32(info.Mode().Perm()) | sticky(info), Origin: origin})
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(hp)
			if err != nil {
				return inputErr("%s: %v", origin, err)
			}
			return p.base.add(Entry{Path: ap, Kind: KindSymlink, Target: t, Origin: origin})
		default:
			return p.includeFile(hp, ap, origin, info)
		}
	})
}

func sticky(info fs.FileInfo) uint32 {
	var m uint32
	if info.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	if info.Mode()&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if info.Mode()&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	return m
}

func (p *planner) includeFile(hp, ap, origin string, info fs.FileInfo) error {
	if !info.Mode().IsRegular() {
		return inputErr("%s: %s is not a regular file, directory or symlink", origin, hp)
	}
	if err := p.addFile(hp, ap, origin, 0); err != nil {
		return err
	}
	// Executables get their libraries; checking only files with an x bit
	// keeps warm runs from opening every file of a large include.
	if info.Mode().Perm()&0o111 != 0 {
		return p.addLibs(hp, origin+" ("+hp+")")
	}
	return nil
}

func (p *planner) addBusybox(bb string) error {
	if err := p.addBinary(bb, "/bin/busybox", "--busybox"); err != nil {
		return err
	}
	out, err := listApplets(bb)
	if err != nil {
		return inputErr("--busybox %s: cannot list its applets (%v): is it busybox built for this machine?", bb, err)
	}
	for _, a := range strings.Fields(string(out)) {
		ap := "/" + strings.TrimPrefix(a, "/")
		if ap == "/bin/busybox" || strings.Contains(ap, "..") {
			continue
		}
		if _, taken := p.base.byPath[path.Clean(ap)]; taken {
			continue // an explicit file wins over an applet link
		}
		if err := p.base.add(Entry{Path: ap, Kind: KindSymlink, Target: "/bin/busybox", Origin: "--busybox applet"}); err != nil {
			return err
		}
	}
	return nil
}

// Bounds on running `busybox --list-full`: a real busybox lists a few
// hundred applets (about 5 KB) at once.
const (
	appletListMax     = 1 << 20
	appletListTimeout = 10 * time.Second
)

// listApplets runs `bb --list-full`. Only the binary knows which applets
// it was built with (its applet table is not a stable format to parse), so
// it is run, but bounded: it must be an ELF file, it gets no stdin, an
// empty environment, at most appletListTimeout and appletListMax bytes of
// output (a binary that is not busybox might print without end).
func listApplets(bb string) ([]byte, error) {
	f, err := os.Open(bb)
	if err != nil {
		return nil, unwrapPathErr(err)
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	f.Close()
	if err != nil || string(magic) != "\x7fELF" {
		return nil, errors.New("not an ELF binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), appletListTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bb, "--list-full")
	cmd.Env = []string{}
	out := &limitedBuffer{max: appletListMax}
	cmd.Stdout = out
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	switch {
	case out.over:
		return nil, fmt.Errorf("it printed more than %d bytes", appletListMax)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("it ran for more than %v", appletListTimeout)
	case err != nil:
		return nil, err
	}
	return out.buf.Bytes(), nil
}

// limitedBuffer keeps up to max bytes and then fails the write, which
// ends the child's output (and, through the closed pipe, the child).
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.max {
		l.over = true
		return 0, errors.New("output too large")
	}
	return l.buf.Write(p)
}

// plan is the planned content of both parts.
type plan struct {
	base, run []Entry
}

func makePlan(spec *Spec, res *elfdeps.Resolver) (*plan, error) {
	p := &planner{res: res, base: newLayout(), libDirs: map[string]bool{}}
	if spec.Init == "" {
		return nil, inputErr("no init binary: pass --init PATH")
	}
	if err := addSkeleton(p.base); err != nil {
		return nil, err
	}
	if err := p.addBinary(spec.Init, runconfig.InitPath, "--init"); err != nil {
		return nil, err
	}
	if spec.Scheduler != "" {
		if err := p.addBinary(spec.Scheduler, runconfig.SchedulerPath, "--scheduler"); err != nil {
			return nil, err
		}
	} else if len(spec.SchedulerArgs) > 0 {
		return nil, inputErr("scheduler arguments given without --scheduler")
	}
	// Includes before busybox so that an included file wins over an
	// applet link of the same name.
	for _, inc := range spec.Includes {
		if err := p.addInclude(inc); err != nil {
			return nil, err
		}
	}
	if spec.Busybox != "" {
		if err := p.addBusybox(spec.Busybox); err != nil {
			return nil, err
		}
	}

	cfg := &runconfig.Config{AttachTimeoutMS: spec.AttachTimeoutMS}
	if spec.Scheduler != "" {
		cfg.Scheduler = &runconfig.Scheduler{Name: filepath.Base(spec.Scheduler), Path: runconfig.SchedulerPath, Args: spec.SchedulerArgs}
	}
	if len(spec.Env) > 0 || len(p.libDirs) > 0 {
		cfg.Env = map[string]string{}
		for k, v := range spec.Env {
			cfg.Env[k] = v
		}
	}
	if len(p.libDirs) > 0 {
		// The guest has no ld.so.cache, and $ORIGIN-relative RUNPATHs
		// point elsewhere once a binary moves to its archive path: tell
		// the guest's loader about every non-default library directory.
		dirs := make([]string, 0, len(p.libDirs))
		for d := range p.libDirs {
			dirs = append(dirs, d)
		}
		sort.Strings(dirs)
		if old := cfg.Env["LD_LIBRARY_PATH"]; old != "" {
			dirs = append([]string{old}, dirs...)
		}
		cfg.Env["LD_LIBRARY_PATH"] = strings.Join(dirs, ":")
	}
	run := newLayout()
	if spec.Scenario != nil {
		cfg.Scenario = runconfig.ScenarioPath
		cfg.ScenarioName = spec.ScenarioName
		if err := run.add(Entry{Path: runconfig.ScenarioPath, Kind: KindFile, Perm: 0o644, Data: spec.Scenario, Origin: "--scenario"}); err != nil {
			return nil, err
		}
	}
	rc, err := runconfig.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := run.add(Entry{Path: runconfig.Path, Kind: KindFile, Perm: 0o644, Data: rc, Origin: "the run configuration"}); err != nil {
		return nil, err
	}
	for _, e := range run.entries() {
		if old, ok := p.base.byPath[e.Path]; ok && e.Kind != KindDir {
			return nil, inputErr("archive path %s from %s collides with the run configuration's files", e.Path, old.Origin)
		}
	}
	return &plan{base: p.base.entries(), run: run.entries()}, nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// statPath stats a host file by path, following symlinks.
func statPath(p string) (fileStat, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return fileStat{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fileStat{}, &fs.PathError{Op: "stat", Path: p, Err: errors.New("not a regular file")}
	}
	return toFileStat(&st), nil
}

func statFile(f *os.File) (fileStat, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fileStat{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return toFileStat(&st), nil
}

func toFileStat(st *syscall.Stat_t) fileStat {
	return fileStat{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		MtimeNS: st.Mtim.Nano(), CtimeNS: st.Ctim.Nano(),
		Mode: st.Mode, valid: true,
	}
}
