package elfdeps_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/elfdeps"
)

// lddPaths runs ldd(1) and returns the real paths of what it lists
// (libraries and the interpreter), the oracle for Resolve.
func lddPaths(t *testing.T, bin string) []string {
	t.Helper()
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("SKIP LOUDLY: ldd not installed: the loader-comparison test did not run")
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	re := regexp.MustCompile(`(?m)^\s+(?:\S+ => )?(/\S+) \(0x`)
	var paths []string
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		real, err := filepath.EvalSymlinks(m[1])
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, real)
	}
	sort.Strings(paths)
	return paths
}

func resolvedPaths(t *testing.T, bin string) ([]string, []elfdeps.Lib) {
	t.Helper()
	r, err := elfdeps.NewResolver()
	if err != nil {
		t.Fatal(err)
	}
	libs, err := r.Resolve(bin)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, l := range libs {
		paths = append(paths, l.Path)
	}
	return paths, libs
}

func TestResolveBinLsMatchesLdd(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip("SKIP LOUDLY: /bin/ls missing")
	}
	got, libs := resolvedPaths(t, "/bin/ls")
	want := lddPaths(t, "/bin/ls")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Resolve(/bin/ls):\n%s\nldd:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var libc, interp bool
	for _, l := range libs {
		if strings.HasPrefix(filepath.Base(l.Path), "libc.so") || l.Name == "libc.so.6" {
			libc = true
		}
		if l.Interp {
			interp = true
			info, _ := elfdeps.ParseFile("/bin/ls")
			found := false
			for _, a := range append(l.Aliases, l.Path) {
				found = found || a == info.Interp
			}
			if !found {
				t.Errorf("interpreter %s not reachable at PT_INTERP %s (aliases %v)", l.Path, info.Interp, l.Aliases)
			}
		}
	}
	if !libc || !interp {
		t.Fatalf("libc found %v, interpreter found %v: %+v", libc, interp, libs)
	}
}

func TestResolveFixtureSchedulers(t *testing.T) {
	dir := testenv.Need(t, testenv.SchedulersVar, "fixture scheduler resolution did not run")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Skipf("SKIP LOUDLY: no fixture schedulers in %s: %v", dir, err)
	}
	for _, e := range ents {
		bin := filepath.Join(dir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			got, libs := resolvedPaths(t, bin)
			want := lddPaths(t, bin)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("Resolve:\n%s\nldd:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			names := map[string]bool{}
			for _, l := range libs {
				names[l.Name] = true
			}
			// The fixtures link libelf, zlib and libc (libzstd only where
			// the host's libelf is built with it: ldd above is the judge).
			for _, n := range []string{"libelf.so.1", "libz.so.1", "libc.so.6"} {
				if !names[n] {
					t.Errorf("%s not resolved: %v", n, names)
				}
			}
		})
	}
}

// buildELF makes a minimal dynamic ELF with a C compiler when one exists.
func TestRunpathOriginAndNotFound(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("SKIP LOUDLY: no C compiler (cc): the RUNPATH/$ORIGIN test did not run")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "foo.c"), []byte("int foo(void){return 1;}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.c"), []byte("int foo(void); int main(void){return foo();}\n"), 0o644)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Skipf("SKIP LOUDLY: cc cannot build shared objects here: %v %s", err, out)
		}
	}
	run("-shared", "-fPIC", "-o", filepath.Join(dir, "lib", "libfoo.so"), filepath.Join(dir, "foo.c"))
	run("-o", filepath.Join(dir, "main"), filepath.Join(dir, "main.c"), "-L"+filepath.Join(dir, "lib"), "-lfoo", "-Wl,-rpath,$ORIGIN/lib", "-Wl,--enable-new-dtags")
	run("-o", filepath.Join(dir, "norpath"), filepath.Join(dir, "main.c"), "-L"+filepath.Join(dir, "lib"), "-lfoo")
	r, err := elfdeps.NewResolver()
	if err != nil {
		t.Fatal(err)
	}
	libs, err := r.Resolve(filepath.Join(dir, "main"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range libs {
		if l.Path == filepath.Join(dir, "lib", "libfoo.so") {
			found = true
			if r.IsStandardDir(l.Dir) {
				t.Errorf("%s reported as a standard directory", l.Dir)
			}
		}
	}
	if !found {
		t.Fatalf("libfoo.so via $ORIGIN RUNPATH not found: %+v", libs)
	}
	_, err = r.Resolve(filepath.Join(dir, "norpath"))
	var nf *elfdeps.NotFoundError
	if !errors.As(err, &nf) || nf.Name != "libfoo.so" || !strings.Contains(nf.NeededBy, "norpath") {
		t.Fatalf("want NotFoundError naming libfoo.so and norpath, got %v", err)
	}
}

func TestStaticAndNonELF(t *testing.T) {
	r := elfdeps.NewResolverDirs(nil, nil)
	f := filepath.Join(t.TempDir(), "script")
	os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755)
	if libs, err := r.Resolve(f); err != nil || libs != nil {
		t.Fatalf("non-ELF: %v %v", libs, err)
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		if libs, err := r.Resolve("/bin/busybox"); err != nil || libs != nil {
			t.Fatalf("static busybox: %v %v", libs, err)
		}
	}
}

func TestParseLdSoConf(t *testing.T) {
	cases := []struct {
		in       string
		dirs     []string
		includes []string
	}{
		{"# c\n/usr/local/lib\n\ninclude /etc/ld.so.conf.d/*.conf\n", []string{"/usr/local/lib"}, []string{"/etc/ld.so.conf.d/*.conf"}},
		{"/a:/b,/c /d=libc6 # x\nhwcap 0 nosegneg\nrelative/dir\n", []string{"/a", "/b", "/c", "/d"}, nil},
		{"include rel.d/*.conf\n", nil, []string{"/etc/rel.d/*.conf"}},
		{"  /x//y/  \n", []string{"/x/y"}, nil},
	}
	for _, c := range cases {
		dirs, incs := elfdeps.ParseLdSoConf([]byte(c.in), "/etc")
		if strings.Join(dirs, ",") != strings.Join(c.dirs, ",") || strings.Join(incs, ",") != strings.Join(c.includes, ",") {
			t.Errorf("ParseLdSoConf(%q) = %v %v, want %v %v", c.in, dirs, incs, c.dirs, c.includes)
		}
	}
}

func TestLoadLdSoConfIncludesAndCycles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "top.conf"), []byte("/first\ninclude d/*.conf\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "d", "b.conf"), []byte("/b\n/first\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "d", "a.conf"), []byte("/a\n"), 0o644)
	dirs, err := elfdeps.LoadLdSoConf(filepath.Join(dir, "top.conf"))
	if err != nil || strings.Join(dirs, ",") != "/first,/a,/b" {
		t.Fatalf("got %v %v", dirs, err)
	}
	os.WriteFile(filepath.Join(dir, "loop.conf"), []byte("include loop.conf\n"), 0o644)
	if _, err := elfdeps.LoadLdSoConf(filepath.Join(dir, "loop.conf")); err == nil {
		t.Fatal("include cycle not reported")
	}
	if dirs, err := elfdeps.LoadLdSoConf(filepath.Join(dir, "missing.conf")); err != nil || dirs != nil {
		t.Fatalf("missing top-level file: %v %v", dirs, err)
	}
}

func FuzzParseLdSoConf(f *testing.F) {
	f.Add([]byte("include /etc/ld.so.conf.d/*.conf\n/usr/local/lib\n"))
	f.Add([]byte("/a:/b,/c /d=libc6 # x\nhwcap 0 nosegneg\n"))
	f.Add([]byte("include\n\x00\n=\n/:/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dirs, incs := elfdeps.ParseLdSoConf(data, "/etc")
		for _, d := range dirs {
			if !filepath.IsAbs(d) || filepath.Clean(d) != d {
				t.Fatalf("directory %q is not absolute and clean", d)
			}
		}
		for _, i := range incs {
			if !filepath.IsAbs(i) {
				t.Fatalf("include %q not absolute", i)
			}
		}
	})
}

func FuzzParseELF(f *testing.F) {
	for _, p := range []string{"/bin/ls", "/bin/busybox"} {
		if b, err := os.ReadFile(p); err == nil && len(b) < 4<<20 {
			f.Add(b[:min(len(b), 64<<10)])
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("#!/bin/sh\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := elfdeps.Parse(bytes.NewReader(data))
		if err == nil && info == nil {
			t.Fatal("nil info without error")
		}
		if !bytes.HasPrefix(data, []byte("\x7fELF")) && !errors.Is(err, elfdeps.ErrNotELF) {
			t.Fatalf("non-ELF input gave %v", err)
		}
	})
}
