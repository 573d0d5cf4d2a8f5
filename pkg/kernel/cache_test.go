package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as helper processes for the cache tests: with
// KTSTR_KERNEL_TEST_HELPER set, this test binary publishes an entry, or
// holds an entry in use, instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("KTSTR_KERNEL_TEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "publish":
		c := &Cache{Dir: os.Getenv("CACHE")}
		e, err := c.Publish(os.Getenv("VERSION"), map[string]string{
			FileBzImage: os.Getenv("BZIMAGE"), FileConfig: os.Getenv("CONFIG"), FileVmlinux: os.Getenv("VMLINUX"),
		}, "helper")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(e.Dir)
		os.Exit(0)
	case "use":
		c := &Cache{Dir: os.Getenv("CACHE")}
		release, err := c.Use(os.Getenv("KEY"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("holding")
		io.Copy(io.Discard, os.Stdin) // until the test closes our stdin
		release()
		os.Exit(0)
	}
	os.Exit(2)
}

// fakeFiles writes a bzImage, config and vmlinux for a fake kernel.
func fakeFiles(t *testing.T, image, config string) map[string]string {
	d := t.TempDir()
	files := map[string]string{
		FileBzImage: filepath.Join(d, "bzImage"),
		FileConfig:  filepath.Join(d, "config"),
		FileVmlinux: filepath.Join(d, "vmlinux"),
	}
	os.WriteFile(files[FileBzImage], []byte(image), 0o644)
	os.WriteFile(files[FileConfig], []byte(config), 0o644)
	os.WriteFile(files[FileVmlinux], bytes.Repeat([]byte(image), 2), 0o644)
	return files
}

func openCache(t *testing.T) *Cache {
	c, err := OpenCache(filepath.Join(t.TempDir(), "kernels"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func publish(t *testing.T, c *Cache, version, image, config string) Entry {
	t.Helper()
	e, err := c.Publish(version, fakeFiles(t, image, config), "test")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCachePublishListLookup(t *testing.T) {
	c := openCache(t)
	a := publish(t, c, "6.12.0", "image a", "CONFIG_A=y\n")
	b := publish(t, c, "6.12.3", "image b", "CONFIG_B=y\n")
	old := publish(t, c, "6.1.5", "image c", "CONFIG_C=y\n")
	if !strings.HasPrefix(a.Key, "6.12.0-") || len(a.Key) != len("6.12.0-")+12 {
		t.Errorf("key %q: want VERSION-12hex", a.Key)
	}
	if k := Key("6.12.0", []byte("CONFIG_A=y\n")); k != a.Key {
		t.Errorf("Key() = %s, entry %s", k, a.Key)
	}
	for _, name := range []string{FileBzImage, FileConfig, FileVmlinux, fileMeta} {
		if !isFile(filepath.Join(a.Dir, name)) {
			t.Errorf("entry lacks %s", name)
		}
	}
	if k := a.Kernel(); k.SystemMap != "" || k.Vmlinux == "" || k.How != "cache" {
		t.Errorf("Kernel() = %+v", k)
	}
	list, err := c.List()
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %v, %v", list, err)
	}
	for _, tt := range []struct{ spec, want, err string }{
		{a.Key, a.Key, ""},
		{"6.12", b.Key, ""}, // newest 6.12.x
		{"6.12.0", a.Key, ""},
		{"6.1", old.Key, ""}, // not 6.12
		{a.Key[:len("6.12.0-")+4], a.Key, ""},
		{"6.12.", "", "several"}, // a key prefix two entries share
		{"7", "", "no such kernel"},
		{"../x", "", "no such kernel"},
		{"", "", "no such kernel"},
	} {
		e, err := c.Lookup(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Lookup(%q) = %v, %v; want error %q", tt.spec, e.Key, err, tt.err)
			}
			continue
		}
		if err != nil || e.Key != tt.want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tt.spec, e.Key, err, tt.want)
		}
	}
	// Use refreshes the last-use time: the used entry lists first.
	time.Sleep(20 * time.Millisecond)
	release, err := c.Use(old.Key)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if list, _ := c.List(); list[0].Key != old.Key {
		t.Errorf("after Use, first listed is %s, want %s", list[0].Key, old.Key)
	}
	var out bytes.Buffer
	PrintList(&out, list)
	if n := strings.Count(out.String(), "\n"); n != 4 || !strings.Contains(out.String(), "6.1.5") {
		t.Errorf("PrintList:\n%s", out.String())
	}
}

func TestCachePublishBadInput(t *testing.T) {
	c := openCache(t)
	files := fakeFiles(t, "img", "not a config\n")
	if _, err := c.Publish("6.12", files, ""); !errors.Is(err, ErrNotConfig) {
		t.Errorf("bad config: err = %v", err)
	}
	files = fakeFiles(t, "img", "CONFIG_A=y\n")
	files[FileBzImage] = "/dev/zero"
	if _, err := c.Publish("6.12", files, ""); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero bzImage: err = %v", err)
	}
	delete(files, FileBzImage)
	if _, err := c.Publish("6.12", files, ""); err == nil {
		t.Error("no bzImage: no error")
	}
	if list, _ := c.List(); len(list) != 0 {
		t.Errorf("failed publishes left entries: %v", list)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(ents) != 0 {
		t.Errorf("failed publishes left %d files in tmp/", len(ents))
	}
}

// TestCacheReplace: the same version and config with a different image
// (the source changed) replaces the entry atomically; a reader that had
// the old bzImage open keeps reading the old bytes.
func TestCacheReplace(t *testing.T) {
	c := openCache(t)
	a := publish(t, c, "6.12.0", "old image", "CONFIG_A=y\n")
	f, err := os.Open(filepath.Join(a.Dir, FileBzImage))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	same := publish(t, c, "6.12.0", "old image", "CONFIG_A=y\n")
	if same.Key != a.Key || !same.Created.Equal(a.Created) {
		t.Errorf("identical publish replaced the entry: %+v vs %+v", same, a)
	}
	b := publish(t, c, "6.12.0", "new image", "CONFIG_A=y\n")
	if b.Key != a.Key || b.ImageSHA256 == a.ImageSHA256 {
		t.Fatalf("replace: %+v", b)
	}
	if got, _ := os.ReadFile(filepath.Join(b.Dir, FileBzImage)); string(got) != "new image" {
		t.Errorf("entry holds %q", got)
	}
	if got, _ := io.ReadAll(f); string(got) != "old image" {
		t.Errorf("open old file reads %q", got)
	}
	if list, _ := c.List(); len(list) != 1 {
		t.Errorf("%d entries", len(list))
	}
}

func helper(t *testing.T, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"KTSTR_KERNEL_TEST_HELPER=" + mode}, env...)...)
	return cmd
}

// TestCacheConcurrentPublish: processes publishing the same kernel at
// once all succeed with the same entry, which is whole; nothing is left
// in tmp/.
func TestCacheConcurrentPublish(t *testing.T) {
	c := openCache(t)
	image := strings.Repeat("kernel image bytes ", 1<<19) // ~10 MiB: the copies overlap
	files := fakeFiles(t, image, "CONFIG_A=y\n")
	const n = 8
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < n; i++ {
		cmd := helper(t, "publish", "CACHE="+c.Dir, "VERSION=6.12.0", "BZIMAGE="+files[FileBzImage],
			"CONFIG="+files[FileConfig], "VMLINUX="+files[FileVmlinux])
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	dirs := map[string]bool{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("publisher %d: %v: %s", i, err, outs[i])
			continue
		}
		dirs[strings.TrimSpace(outs[i].String())] = true
	}
	if len(dirs) != 1 {
		t.Fatalf("publishers printed %v", dirs)
	}
	list, _ := c.List()
	if len(list) != 1 {
		t.Fatalf("%d entries", len(list))
	}
	if got, _ := os.ReadFile(filepath.Join(list[0].Dir, FileBzImage)); string(got) != image {
		t.Errorf("bzImage damaged: %d bytes", len(got))
	}
	if ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d leftovers", len(ents))
	}
}

// TestCacheGCInUse: gc removes least recently used entries down to
// --keep / --max-size, but never one another process holds in use.
func TestCacheGCInUse(t *testing.T) {
	c := openCache(t)
	oldest := publish(t, c, "6.1.0", "a", "CONFIG_A=y\n")
	time.Sleep(20 * time.Millisecond)
	mid := publish(t, c, "6.6.0", "b", "CONFIG_B=y\n")
	time.Sleep(20 * time.Millisecond)
	newest := publish(t, c, "6.12.0", "c", "CONFIG_C=y\n")
	// Another process holds the oldest in use.
	user := helper(t, "use", "CACHE="+c.Dir, "KEY="+oldest.Key)
	stdin, _ := user.StdinPipe()
	stdout, _ := user.StdoutPipe()
	if err := user.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 7)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "holding" {
		t.Fatalf("user process: %q %v", line, err)
	}
	// Its Use made the oldest the most recently used; age it again so gc
	// would pick it first.
	past := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(oldest.Dir, fileMeta), past, past)
	r, err := c.GC(1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.SkippedInUse) != 1 || r.SkippedInUse[0] != oldest.Key || len(r.Removed) != 1 || r.Removed[0] != mid.Key {
		t.Errorf("gc with one in use: %+v", r)
	}
	if !isFile(filepath.Join(oldest.Dir, FileBzImage)) || !isFile(filepath.Join(newest.Dir, FileBzImage)) {
		t.Error("gc removed an entry it kept")
	}
	stdin.Close()
	if err := user.Wait(); err != nil {
		t.Fatal(err)
	}
	// Released: now it goes. A size bound keeps only what fits.
	os.Chtimes(filepath.Join(oldest.Dir, fileMeta), past, past)
	r, err = c.GC(-1, newest.Size)
	if err != nil || len(r.Removed) != 1 || r.Removed[0] != oldest.Key || r.Kept != 1 {
		t.Errorf("gc after release: %+v %v", r, err)
	}
	if _, err := c.Use(oldest.Key); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Use of a removed entry: %v", err)
	}
	// Debris from a killed publisher goes once it is an hour old.
	debris := filepath.Join(c.Dir, "tmp", "6.12.0-x.123")
	os.MkdirAll(debris, 0o755)
	os.Chtimes(debris, past, past)
	if _, err := c.GC(-1, -1); err != nil || isDir(debris) {
		t.Errorf("debris kept (%v)", err)
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// TestCacheKilledPublisher: publishers SIGKILLed at different moments
// leave either no entry or a whole one (its bzImage matches the SHA-256
// in its meta.json), never a half-written entry; gc sweeps their debris.
func TestCacheKilledPublisher(t *testing.T) {
	c := openCache(t)
	image := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB: copying takes a while
	files := fakeFiles(t, image, "CONFIG_A=y\n")
	for i, delay := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		cmd := helper(t, "publish", "CACHE="+c.Dir, fmt.Sprintf("VERSION=6.12.%d", i), "BZIMAGE="+files[FileBzImage],
			"CONFIG="+files[FileConfig], "VMLINUX="+files[FileVmlinux])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 6 killed publishers finished", len(list))
	for _, e := range list {
		got, err := os.ReadFile(filepath.Join(e.Dir, FileBzImage))
		if err != nil || string(got) != image {
			t.Errorf("entry %s: bzImage of %d bytes (%v)", e.Key, len(got), err)
		}
		if !isFile(filepath.Join(e.Dir, FileConfig)) {
			t.Errorf("entry %s has no config", e.Key)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "entries"))
	if len(ents) != len(list) {
		t.Errorf("%d directories in entries/, %d entries listed", len(ents), len(list))
	}
	past := time.Now().Add(-2 * time.Hour)
	tmps, _ := os.ReadDir(filepath.Join(c.Dir, "tmp"))
	for _, d := range tmps {
		os.Chtimes(filepath.Join(c.Dir, "tmp", d.Name()), past, past)
	}
	if _, err := c.GC(-1, -1); err != nil {
		t.Fatal(err)
	}
	if tmps, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(tmps) != 0 {
		t.Errorf("gc left %d items of debris", len(tmps))
	}
}
