package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func touch(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	cwd := filepath.Join(base, "work", "proj")
	os.MkdirAll(cwd, 0o755)
	c := openCache(t)
	entry := publish(t, c, "6.12.7", "cached", "CONFIG_A=y\n")

	// A built source tree, a /boot pair, a plain directory with a bzImage.
	tree := filepath.Join(base, "src", "linux-6.12")
	tbz := touch(t, filepath.Join(tree, "arch/x86/boot/bzImage"))
	touch(t, filepath.Join(tree, "vmlinux"))
	touch(t, filepath.Join(tree, "System.map"))
	touch(t, filepath.Join(tree, ".config"))
	touch(t, filepath.Join(tree, "Makefile"))
	bootBz := touch(t, filepath.Join(root, "boot/vmlinuz-6.1.0-test"))
	touch(t, filepath.Join(root, "boot/config-6.1.0-test"))
	touch(t, filepath.Join(root, "boot/System.map-6.1.0-test"))
	plain := filepath.Join(base, "plain")
	touch(t, filepath.Join(plain, "bzImage"))
	touch(t, filepath.Join(plain, "vmlinux"))
	unbuilt := filepath.Join(base, "unbuilt")
	touch(t, filepath.Join(unbuilt, "Makefile"))
	touch(t, filepath.Join(unbuilt, "Kconfig"))
	fifo := filepath.Join(base, "fifo")
	syscall.Mkfifo(fifo, 0o644)

	o := ResolveOptions{CacheDir: c.Dir, Cwd: cwd, Release: "6.1.0-test", Root: root}
	for _, tt := range []struct {
		name, spec            string
		bz, vmlinux, how, err string
		notFound              bool
	}{
		{"file", tbz, tbz, filepath.Join(tree, "vmlinux"), "path", "", false},
		{"source tree", tree, tbz, filepath.Join(tree, "vmlinux"), "source tree", "", false},
		{"relative path", "../../src/linux-6.12", tbz, filepath.Join(tree, "vmlinux"), "source tree", "", false},
		{"dir with bzImage", plain, filepath.Join(plain, "bzImage"), filepath.Join(plain, "vmlinux"), "directory", "", false},
		{"cache dir itself", entry.Dir, filepath.Join(entry.Dir, FileBzImage), filepath.Join(entry.Dir, FileVmlinux), "directory", "", false},
		{"cache key", entry.Key, filepath.Join(entry.Dir, FileBzImage), filepath.Join(entry.Dir, FileVmlinux), "cache", "", false},
		{"cache version", "6.12", filepath.Join(entry.Dir, FileBzImage), filepath.Join(entry.Dir, FileVmlinux), "cache", "", false},
		{"default: /boot", "", bootBz, "", "running kernel", "", false},
		{"unbuilt tree", unbuilt, "", "", "", "ktstr-kernel build", true},
		{"missing path", "./nope/bzImage", "", "", "", "does not exist", true},
		{"unknown name", "6.2", "", "", "", "ktstr-kernel list", true},
		{"fifo", fifo, "", "", "", "not a regular file", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, release, err := Resolve(tt.spec, o)
			defer release()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || errors.Is(err, ErrNotFound) != tt.notFound {
					t.Fatalf("err = %v, want %q (not found: %v)", err, tt.err, tt.notFound)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.BzImage != tt.bz || k.Vmlinux != tt.vmlinux || !strings.HasPrefix(k.How, tt.how) {
				t.Errorf("got %+v\nwant bz=%s vmlinux=%s how=%s", k, tt.bz, tt.vmlinux, tt.how)
			}
		})
	}
	// /boot companions follow the VERSION naming.
	if k, _, _ := Resolve("", o); k.Config != filepath.Join(root, "boot/config-6.1.0-test") || k.SystemMap != filepath.Join(root, "boot/System.map-6.1.0-test") {
		t.Errorf("/boot companions: %+v", k)
	}
	// ../linux comes before /boot, ./linux before ../linux.
	up := touch(t, filepath.Join(base, "work", "linux", "arch/x86/boot/bzImage"))
	if k, _, err := Resolve("", o); err != nil || k.BzImage != up {
		t.Errorf("../linux: %+v %v", k, err)
	}
	here := touch(t, filepath.Join(cwd, "linux", "arch/x86/boot/bzImage"))
	if k, _, err := Resolve("", o); err != nil || k.BzImage != here {
		t.Errorf("./linux: %+v %v", k, err)
	}
	// Nothing anywhere: one error naming every place tried.
	empty := ResolveOptions{CacheDir: c.Dir, Cwd: t.TempDir(), Release: "0.0", Root: t.TempDir()}
	if _, _, err := Resolve("", empty); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "vmlinuz-0.0") || !strings.Contains(err.Error(), "ktstr-kernel build") {
		t.Errorf("nothing found: %v", err)
	}
}

// TestResolveHoldsEntry: a resolved cache entry is in use until release,
// so gc keeps it.
func TestResolveHoldsEntry(t *testing.T) {
	c := openCache(t)
	e := publish(t, c, "6.12.0", "img", "CONFIG_A=y\n")
	_, release, err := Resolve(e.Key, ResolveOptions{CacheDir: c.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.GC(0, -1); len(r.Removed) != 0 || len(r.SkippedInUse) != 1 {
		t.Errorf("gc while resolved: %+v", r)
	}
	release()
	if r, _ := c.GC(0, -1); len(r.Removed) != 1 {
		t.Errorf("gc after release: %+v", r)
	}
}
