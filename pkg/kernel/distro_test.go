package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// testCacheDir is where the distribution-package tests keep downloads
// between runs: $XDG_CACHE_HOME/ktstr/test or ~/.cache/ktstr/test.
func testCacheDir(t *testing.T) string {
	d := os.Getenv("XDG_CACHE_HOME")
	if d == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Skipf("SKIP: no cache directory for downloads: %v", err)
		}
		d = filepath.Join(home, ".cache")
	}
	d = filepath.Join(d, "ktstr", "test")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	return d
}

// debianPackage downloads (apt-get download, no root, nothing installed)
// and unpacks the newest Debian package whose name matches re, once, and
// returns the unpacked tree, holding only the top-level directories in
// keep (all if none). It skips loudly where apt is unavailable.
func debianPackage(t *testing.T, re string, keep ...string) string {
	t.Helper()
	if os.Getenv("KTSTR_NO_DOWNLOAD") == "1" {
		t.Skipf("SKIP: KTSTR_NO_DOWNLOAD=1: not downloading a Debian package matching %s", re)
	}
	for _, tool := range []string{"apt-cache", "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not installed: cannot fetch a Debian package matching %s", tool, re)
		}
	}
	out, err := exec.Command("apt-cache", "search", "--names-only", re).Output()
	if err != nil {
		t.Skipf("SKIP: apt-cache search %s: %v", re, err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	if len(names) == 0 {
		t.Skipf("SKIP: no Debian package matches %s here (not Debian 12, or apt lists not updated: apt-get update)", re)
	}
	sort.Slice(names, func(i, j int) bool { return versionLess(names[i], names[j]) })
	name := names[len(names)-1]
	dir := filepath.Join(testCacheDir(t), name)
	if isDir(filepath.Join(dir, "x")) {
		return filepath.Join(dir, "x")
	}
	os.RemoveAll(dir)
	tmp := dir + fmt.Sprintf(".tmp%d", os.Getpid())
	os.RemoveAll(tmp)
	os.MkdirAll(tmp, 0o755)
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", "download", "-q", name)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("SKIP: apt-get download %s failed (offline?): %v: %s", name, err, lastLines(string(out), 3))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %d .deb files", name, len(debs))
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], filepath.Join(tmp, "x")).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v: %s", err, out)
	}
	os.Remove(debs[0])
	if len(keep) > 0 {
		ents, _ := os.ReadDir(filepath.Join(tmp, "x"))
		for _, e := range ents {
			if !contains(keep, e.Name()) {
				os.RemoveAll(filepath.Join(tmp, "x", e.Name()))
			}
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("downloaded %s into %s", name, dir)
	return filepath.Join(dir, "x")
}

// versionLess orders package names by their numeric parts (6.12.9 < 6.12.10).
func versionLess(a, b string) bool {
	na, nb := numbers(a), numbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	return len(na) < len(nb)
}

func numbers(s string) []int {
	var out []int
	n, in := 0, false
	for _, c := range s + "x" {
		if c >= '0' && c <= '9' {
			n, in = n*10+int(c-'0'), true
		} else if in {
			out, n, in = append(out, n), 0, false
		}
	}
	return out
}

// TestDebianKernel: Debian 12's linux-image-6.12 (installed nowhere: the
// package is unpacked in a cache directory). Its image is zstd-compressed
// without IKCONFIG, its config-VERSION lies beside it, and it has BTF but
// no sched_ext and no virtio-mmio command-line devices (VIRTIO_MMIO is a
// module): check must call it unusable and say so.
func TestDebianKernel(t *testing.T) {
	root := debianPackage(t, `^linux-image-6\.12\.[0-9]+\+deb12-amd64$`, "boot")
	vmlinuz, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		t.Fatalf("%d vmlinuz in the package", len(vmlinuz))
	}
	_, comp, err := ReadIKConfig(vmlinuz[0])
	if !errors.Is(err, ErrNoIKConfig) || comp != "zstd" {
		t.Errorf("ReadIKConfig: %s %v; want a zstd payload without IKCONFIG", comp, err)
	}
	cfg, source, err := LoadConfig(vmlinuz[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(source, filepath.Join(root, "boot", "config-")) {
		t.Errorf("config came from %s", source)
	}
	r := Check(cfg, source, false)
	var out bytes.Buffer
	r.Print(&out)
	t.Logf("ktstr-kernel check %s:\n%s", vmlinuz[0], out.String())
	if r.Usable || r.Baseline {
		t.Error("a kernel without virtio-mmio command-line devices must be unusable")
	}
	want := map[string]bool{"sched_ext": false, "virtio-mmio command-line devices": false, "BTF": true, "BPF JIT": true, "virtio console": true}
	for _, res := range r.Results {
		if ok, listed := want[res.Name]; listed && res.OK != ok {
			t.Errorf("%s: ok=%v, want %v (%v %v)", res.Name, res.OK, ok, res.Missing, res.Modules)
		}
	}
	for _, line := range []string{
		"no CONFIG_SCHED_CLASS_EXT: only EEVDF baselines can run",
		"no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES; CONFIG_VIRTIO_MMIO=m (a module; ktstr guests load none)",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("check output lacks %q", line)
		}
	}
}

// TestRealBuild builds a real kernel (opt-in: KTSTR_KERNEL_BUILD=1; tens
// of minutes on two CPUs): KTSTR_KERNEL_SRC, else Debian's
// linux-source-6.12 unpacked in the test cache. The cached kernel must
// carry IKCONFIG and pass check, and its vmlinux must have BTF.
func TestRealBuild(t *testing.T) {
	if os.Getenv("KTSTR_KERNEL_BUILD") != "1" {
		t.Skip("SKIP: a real kernel build takes tens of minutes: set KTSTR_KERNEL_BUILD=1 (and optionally KTSTR_KERNEL_SRC)")
	}
	src := os.Getenv("KTSTR_KERNEL_SRC")
	if src == "" {
		root := debianPackage(t, `^linux-source-6\.12$`)
		src = filepath.Join(root, "usr", "src", "linux-source-6.12")
		if !isDir(src) {
			tars, _ := filepath.Glob(filepath.Join(root, "usr", "src", "linux-source-6.12.tar.*"))
			if len(tars) != 1 {
				t.Fatalf("no source tarball in %s", root)
			}
			if out, err := exec.Command("tar", "-C", filepath.Dir(tars[0]), "-xf", tars[0]).CombinedOutput(); err != nil {
				t.Fatalf("tar: %v: %s", err, out)
			}
		}
	}
	c := openCache(t)
	start := time.Now()
	res, err := Build(context.Background(), BuildOptions{Src: src, Jobs: runtime.NumCPU(), Cache: c, Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", res.Entry.Key, time.Since(start).Round(time.Second))
	k := res.Entry.Kernel()
	cfg, comp, err := ReadIKConfig(k.BzImage)
	if err != nil {
		t.Fatalf("built image: %v", err)
	}
	if r := Check(cfg, k.BzImage+" ("+comp+")", false); !r.Usable {
		var out bytes.Buffer
		r.Print(&out)
		t.Errorf("built kernel unusable:\n%s", out.String())
	}
	if out, err := exec.Command("readelf", "-S", k.Vmlinux).Output(); err == nil && !bytes.Contains(out, []byte(".BTF")) {
		t.Errorf("vmlinux has no .BTF section")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
