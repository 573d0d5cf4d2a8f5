package kernel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeTree copies testdata/fake-linux (a Makefile that emulates the
// kernel's kernelversion, defconfig, kvm_guest.config, olddefconfig and
// bzImage targets) to a temporary directory.
func fakeTree(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP: make not installed")
	}
	dst := filepath.Join(t.TempDir(), "linux")
	if out, err := exec.Command("cp", "-r", "testdata/fake-linux", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func TestBuildFakeTree(t *testing.T) {
	src := fakeTree(t)
	t.Setenv("FAKE_UNKNOWN", "NOT_IN_THIS_TREE")
	extra := filepath.Join(t.TempDir(), "extra.fragment")
	os.WriteFile(extra, []byte("CONFIG_NOT_IN_THIS_TREE=y\nCONFIG_HZ_300=y\n"), 0o644)
	os.WriteFile(filepath.Join(src, ".config"), []byte("CONFIG_USER_OWN=y\n"), 0o644)
	c := openCache(t)
	var log bytes.Buffer
	res, err := Build(context.Background(), BuildOptions{Src: src, Jobs: 2, Fragments: []string{extra}, Cache: c, Log: &log})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if res.Version != "6.12.99-fake" || !strings.HasPrefix(res.Entry.Key, "6.12.99-fake-") {
		t.Errorf("version %q key %q", res.Version, res.Entry.Key)
	}
	if !res.Report.Usable {
		t.Errorf("fragment over the fake defconfig is not usable: %+v", res.Report)
	}
	// The tree's own .config was saved, the option the tree lacks is named.
	if b, _ := os.ReadFile(filepath.Join(src, ".config.before-ktstr")); string(b) != "CONFIG_USER_OWN=y\n" {
		t.Errorf(".config.before-ktstr = %q", b)
	}
	if len(res.Unapplied) != 1 || !strings.Contains(res.Unapplied[0], "CONFIG_NOT_IN_THIS_TREE=y") {
		t.Errorf("unapplied = %q", res.Unapplied)
	}
	if !strings.Contains(log.String(), "note: CONFIG_NOT_IN_THIS_TREE=y was asked for") {
		t.Errorf("log lacks the note:\n%s", log.String())
	}
	// The entry holds the tree's files; its key is the final .config's.
	cfg, _ := os.ReadFile(filepath.Join(src, ".config"))
	if Key(res.Version, cfg) != res.Entry.Key {
		t.Errorf("key %s is not Key(version, .config)", res.Entry.Key)
	}
	for name, p := range map[string]string{FileBzImage: "arch/x86/boot/bzImage", FileVmlinux: "vmlinux", FileSystemMap: "System.map", FileConfig: ".config"} {
		want, _ := os.ReadFile(filepath.Join(src, p))
		got, err := os.ReadFile(filepath.Join(res.Entry.Dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("entry %s differs from the tree's %s (%v)", name, p, err)
		}
	}
	parsed, _ := ReadConfigFile(filepath.Join(res.Entry.Dir, FileConfig))
	if parsed.Get("MODULES") != "" || parsed.Get("SCHED_CLASS_EXT") != "y" || parsed.Get("KVM_GUEST") != "y" || parsed.Get("HZ_300") != "y" {
		t.Errorf("final config: MODULES=%q SCHED_CLASS_EXT=%q KVM_GUEST=%q HZ_300=%q", parsed.Get("MODULES"), parsed.Get("SCHED_CLASS_EXT"), parsed.Get("KVM_GUEST"), parsed.Get("HZ_300"))
	}
	// The build log went away with success; resolving the version finds it.
	if ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ keeps %d files after a good build", len(ents))
	}
	k, release, err := Resolve("6.12.99", ResolveOptions{CacheDir: c.Dir})
	defer release()
	if err != nil || k.BzImage != filepath.Join(res.Entry.Dir, FileBzImage) || k.Vmlinux == "" || k.SystemMap == "" {
		t.Errorf("Resolve(6.12.99) = %+v, %v", k, err)
	}
	// Building again publishes the same entry, and keeps the first save
	// of the user's .config.
	defer func() {
		if b, _ := os.ReadFile(filepath.Join(src, ".config.before-ktstr")); string(b) != "CONFIG_USER_OWN=y\n" {
			t.Errorf("after a rebuild .config.before-ktstr = %q", b)
		}
	}()
	res2, err := Build(context.Background(), BuildOptions{Src: src, Jobs: 1, Fragments: []string{extra}, Cache: c, Log: &log})
	if err != nil || res2.Entry.Key != res.Entry.Key {
		t.Errorf("rebuild: %v %v", res2.Entry.Key, err)
	}
	if list, _ := c.List(); len(list) != 1 {
		t.Errorf("%d entries after a rebuild", len(list))
	}
}

func TestBuildFailures(t *testing.T) {
	t.Run("make fails", func(t *testing.T) {
		src := fakeTree(t)
		t.Setenv("FAKE_FAIL", "1")
		c := openCache(t)
		_, err := Build(context.Background(), BuildOptions{Src: src, Cache: c})
		if err == nil || !strings.Contains(err.Error(), "error: fake failure") || !strings.Contains(err.Error(), "full log: ") {
			t.Fatalf("err = %v", err)
		}
		if list, _ := c.List(); len(list) != 0 {
			t.Errorf("a failed build was cached: %v", list)
		}
	})
	t.Run("unusable config refused", func(t *testing.T) {
		src := fakeTree(t)
		t.Setenv("FAKE_UNKNOWN", "SCHED_CLASS_EXT VIRTIO_MMIO_CMDLINE_DEVICES")
		c := openCache(t)
		var log bytes.Buffer
		_, err := Build(context.Background(), BuildOptions{Src: src, Cache: c, Log: &log})
		if err == nil || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(log.String(), "MISSING  sched_ext") || !strings.Contains(log.String(), "virtio-mmio command-line devices") {
			t.Errorf("log does not name what is missing:\n%s", log.String())
		}
		if isFile(filepath.Join(src, "vmlinux")) {
			t.Error("make bzImage ran for an unusable configuration")
		}
		res, err := Build(context.Background(), BuildOptions{Src: src, Cache: c, Force: true, KeepConfig: true})
		if err != nil || res.Entry.Key == "" {
			t.Errorf("--force: %v", err)
		}
	})
	t.Run("config only", func(t *testing.T) {
		src := fakeTree(t)
		c := openCache(t)
		res, err := Build(context.Background(), BuildOptions{Src: src, Cache: c, ConfigOnly: true})
		if err != nil || !res.Report.Usable || res.Entry.Key != "" || isFile(filepath.Join(src, "vmlinux")) {
			t.Errorf("config-only: %+v %v", res, err)
		}
	})
	t.Run("not a tree", func(t *testing.T) {
		if _, err := Build(context.Background(), BuildOptions{Src: t.TempDir(), Cache: openCache(t)}); err == nil || !strings.Contains(err.Error(), "not a kernel source tree") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		src := fakeTree(t)
		t.Setenv("FAKE_SLEEP", "47.25")
		c := openCache(t)
		ctx, cancel := context.WithCancel(context.Background())
		var log bytes.Buffer
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := Build(ctx, BuildOptions{Src: src, Cache: c, Log: &log})
			done <- err
		}()
		// Cancel once make runs bzImage (its sleep child is up).
		for !strings.Contains(log.String(), "building 6.12.99-fake") && time.Since(start) < 30*time.Second {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "interrupted") {
				t.Errorf("err = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Build did not stop on cancel (make's children kept it waiting?)")
		}
		if out, _ := exec.Command("pgrep", "-f", "sleep 47.25").Output(); len(out) > 0 {
			t.Errorf("make's child survived the interrupt: pids %s", out)
		}
	})
}

func TestProgressLine(t *testing.T) {
	src := fakeTree(t)
	t.Setenv("FAKE_SLEEP", "1")
	var log bytes.Buffer
	_, err := Build(context.Background(), BuildOptions{Src: src, Cache: openCache(t), Log: &log, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "\r\033[K[") || !strings.Contains(log.String(), "steps  CC mm/slub.o") {
		t.Errorf("no live progress line:\n%q", log.String())
	}
}
