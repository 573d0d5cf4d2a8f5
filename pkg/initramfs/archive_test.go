package initramfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ktstr-go/ktstr/pkg/initramfs"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
	"github.com/pierrec/lz4/v4"
)

// staticBinary is a static ELF of this machine usable as /init in tests
// that do not boot (busybox-static is a dependency of the project).
func staticBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("SKIP LOUDLY: busybox-static (/bin/busybox) is not installed: this test did not run")
	return ""
}

// decompress undoes a blob's compression (all concatenated frames).
func decompress(t *testing.T, comp initramfs.Compression, blob []byte) []byte {
	t.Helper()
	switch comp {
	case initramfs.Zstd:
		d, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		out, err := d.DecodeAll(blob, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case initramfs.LZ4:
		out, err := io.ReadAll(lz4.NewReader(bytes.NewReader(blob)))
		if err != nil {
			t.Fatal(err)
		}
		return out
	case initramfs.Gzip:
		r, err := gzip.NewReader(bytes.NewReader(blob)) // multistream by default
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return blob
}

type member struct {
	hdr  *cpio.Header
	data []byte
}

// readArchives reads every concatenated archive in raw with the cpio
// package, by name.
func readArchives(t *testing.T, raw []byte) map[string]member {
	t.Helper()
	out := map[string]member{}
	rest := raw
	for len(bytes.TrimLeft(rest, "\x00")) > 0 {
		rest = bytes.TrimLeft(rest, "\x00")
		br := bytes.NewReader(rest)
		r := cpio.NewReader(br)
		for {
			h, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read archive: %v", err)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = member{h, b}
		}
		// The reader consumed the trailer header; skip to the next
		// four-byte boundary where the next archive starts.
		used := len(rest) - br.Len()
		rest = rest[used:]
	}
	return out
}

func TestArchiveContentsAndReadBack(t *testing.T) {
	bb := staticBinary(t)
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc")
	os.MkdirAll(filepath.Join(inc, "sub"), 0o755)
	os.WriteFile(filepath.Join(inc, "a.txt"), []byte("hello"), 0o640)
	os.WriteFile(filepath.Join(inc, "sub", "b.bin"), bytes.Repeat([]byte{7}, 4097), 0o600)
	os.Symlink("a.txt", filepath.Join(inc, "link"))
	scen := []byte(`{"name":"x"}`)
	for _, comp := range initramfs.Compressions {
		t.Run(string(comp), func(t *testing.T) {
			var buf bytes.Buffer
			b := &initramfs.Builder{Version: "test"}
			_, err := b.WriteTo(&buf, &initramfs.Spec{Init: bb, Scheduler: bb, SchedulerArgs: []string{"--slice-us", "5000"},
				Includes: []initramfs.Include{{Host: inc, Archive: "/opt/inc"}}, Busybox: bb, Scenario: scen, Compression: comp})
			if err != nil {
				t.Fatal(err)
			}
			raw := decompress(t, comp, buf.Bytes())
			m := readArchives(t, raw)
			initData, _ := os.ReadFile(bb)
			checks := []struct {
				name string
				mode cpio.FileMode
				data []byte
				link string
			}{
				{"init", cpio.TypeReg | 0o755, initData, ""},
				{"usr/lib/ktstr/scheduler", cpio.TypeReg | 0o755, initData, ""},
				{"bin/busybox", cpio.TypeReg | 0o755, initData, ""},
				{"bin/sh", cpio.TypeSymlink | 0o777, nil, "/bin/busybox"},
				{"dev", cpio.TypeDir | 0o755, nil, ""},
				{"proc", cpio.TypeDir | 0o555, nil, ""},
				{"sys", cpio.TypeDir | 0o555, nil, ""},
				{"tmp", cpio.TypeDir | 0o1777, nil, ""},
				{"run", cpio.TypeDir | 0o755, nil, ""},
				{"dev/console", cpio.TypeChar | 0o600, nil, ""},
				{"opt/inc/a.txt", cpio.TypeReg | 0o640, []byte("hello"), ""},
				{"opt/inc/sub/b.bin", cpio.TypeReg | 0o600, bytes.Repeat([]byte{7}, 4097), ""},
				{"opt/inc/link", cpio.TypeSymlink | 0o777, nil, "a.txt"},
				{"etc/ktstr/scenario.json", cpio.TypeReg | 0o644, scen, ""},
			}
			for _, c := range checks {
				got, ok := m[c.name]
				if !ok {
					t.Errorf("%s missing", c.name)
					continue
				}
				if got.hdr.Mode != c.mode {
					t.Errorf("%s: mode %o, want %o", c.name, got.hdr.Mode, c.mode)
				}
				if c.data != nil && !bytes.Equal(got.data, c.data) {
					t.Errorf("%s: content differs (%d bytes, want %d)", c.name, len(got.data), len(c.data))
				}
				if got.hdr.Linkname != c.link {
					t.Errorf("%s: link %q, want %q", c.name, got.hdr.Linkname, c.link)
				}
				if got.hdr.ModTime.Unix() != 0 || got.hdr.Uid != 0 || got.hdr.Guid != 0 {
					t.Errorf("%s: mtime %v uid %d gid %d, want all 0", c.name, got.hdr.ModTime.Unix(), got.hdr.Uid, got.hdr.Guid)
				}
			}
			rc, ok := m[strings.TrimPrefix(runconfig.Path, "/")]
			if !ok {
				t.Fatal("run configuration missing")
			}
			cfg, err := runconfig.Unmarshal(rc.data)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Scheduler == nil || cfg.Scheduler.Path != runconfig.SchedulerPath ||
				strings.Join(cfg.Scheduler.Args, " ") != "--slice-us 5000" || cfg.Scenario != runconfig.ScenarioPath {
				t.Fatalf("run configuration %+v", cfg)
			}
			// The device numbers, which the cpio package cannot read,
			// checked in the raw header: rdevmajor and rdevminor.
			h := headerOf(raw, "dev/console")
			if h[:6] != "070701" || h[78:86] != "00000005" || h[86:94] != "00000001" || h[94:102] != "0000000C" {
				t.Fatalf("dev/console header %q", h)
			}
			// Every header of both archives has the 070701 magic.
			for _, name := range []string{"init", "TRAILER!!!", "etc/ktstr/run.json"} {
				if h := headerOf(raw, name); h[:6] != "070701" {
					t.Errorf("header of %s lacks the 070701 magic", name)
				}
			}
			systemCpioList(t, raw)
		})
	}
}

// systemCpioList checks that GNU cpio lists the first archive in raw and
// sees /init and /dev/console (as a 5,1 character device).
func systemCpioList(t *testing.T, raw []byte) {
	t.Helper()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("SKIP LOUDLY: cpio(1) not installed: the system-cpio read-back did not run")
	}
	cmd := exec.Command("cpio", "-tv", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, " init\n") || !regexpContains(s, `crw-------.* 5, +1 .*dev/console`) {
		t.Fatalf("cpio -tv output lacks init or dev/console 5,1:\n%s", s)
	}
}

func TestReproducibleAcrossBuildsAndCaches(t *testing.T) {
	bb := staticBinary(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 / 13)
	}
	os.WriteFile(big, data, 0o644)
	spec := func() *initramfs.Spec {
		return &initramfs.Spec{Init: bb, Includes: []initramfs.Include{{Host: big}}, Env: map[string]string{"B": "1", "A": "2"}}
	}
	var first []byte
	for i := 0; i < 3; i++ {
		b := &initramfs.Builder{Cache: openCache(t), Version: "test"}
		r, err := b.Build(spec())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(r.Path)
		if i == 0 {
			first = got
			continue
		}
		if !bytes.Equal(got, first) {
			t.Fatalf("build %d differs from build 0 (%d vs %d bytes)", i, len(got), len(first))
		}
	}
	var buf bytes.Buffer
	if _, err := (&initramfs.Builder{Version: "test"}).WriteTo(&buf, spec()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), first) {
		t.Fatal("uncached build differs from cached build")
	}
	// A different version, compression or argument changes the key.
	keys := map[string]bool{}
	for _, v := range []struct {
		ver  string
		comp initramfs.Compression
		args []string
	}{{"test", initramfs.Zstd, nil}, {"other", initramfs.Zstd, nil}, {"test", initramfs.Gzip, nil}, {"test", initramfs.Zstd, []string{"x"}}} {
		s := spec()
		s.Compression = v.comp
		if v.args != nil {
			s.Scheduler, s.SchedulerArgs = bb, v.args
		}
		k, err := (&initramfs.Builder{Version: v.ver}).Key(s)
		if err != nil {
			t.Fatal(err)
		}
		keys[k] = true
	}
	if len(keys) != 4 {
		t.Fatalf("expected 4 distinct keys, got %d", len(keys))
	}
}

func TestInputErrors(t *testing.T) {
	bb := staticBinary(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	cases := []struct {
		name string
		spec initramfs.Spec
		want string
	}{
		{"missing init", initramfs.Spec{Init: filepath.Join(dir, "nope")}, "no such file"},
		{"missing scheduler", initramfs.Spec{Init: bb, Scheduler: filepath.Join(dir, "nope")}, "--scheduler"},
		{"conflict", initramfs.Spec{Init: bb, Includes: []initramfs.Include{{Host: f, Archive: "/init"}}}, "wanted by both"},
		{"file over dir", initramfs.Spec{Init: bb, Includes: []initramfs.Include{{Host: f, Archive: "/init/x"}}}, "inside /init"},
		{"args without scheduler", initramfs.Spec{Init: bb, SchedulerArgs: []string{"-v"}}, "without --scheduler"},
		{"file at /", initramfs.Spec{Init: bb, Includes: []initramfs.Include{{Host: f, Archive: "/"}}}, "not /"},
		{"run file collision", initramfs.Spec{Init: bb, Includes: []initramfs.Include{{Host: f, Archive: runconfig.Path}}}, "collides"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := (&initramfs.Builder{Version: "test"}).Key(&c.spec)
			var ie *initramfs.InputError
			if err == nil || !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an InputError containing %q", err, c.want)
			}
		})
	}
}

func TestParseInclude(t *testing.T) {
	for _, c := range []struct {
		in, host, arch string
		bad            bool
	}{{"a", "a", "", false}, {"a:/x/y", "a", "/x/y", false}, {"a:rel", "", "", true}, {":/x", "", "", true}} {
		inc, err := initramfs.ParseInclude(c.in)
		if (err != nil) != c.bad || (!c.bad && (inc.Host != c.host || inc.Archive != c.arch)) {
			t.Errorf("ParseInclude(%q) = %+v, %v", c.in, inc, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		bad  bool
	}{{"100", 100, false}, {"1K", 1024, false}, {"1.5M", 3 << 19, false}, {"2G", 2 << 30, false}, {"x", 0, true}, {"1Q", 0, true}, {"-1", 0, true}} {
		got, err := initramfs.ParseSize(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v", c.in, got, err)
		}
	}
}

// headerOf returns the 110-byte newc header naming name in raw (a header
// starts with "07070" and its name follows it).
func headerOf(raw []byte, name string) string {
	pat := []byte(name + "\x00")
	for off := 0; ; {
		i := bytes.Index(raw[off:], pat)
		if i < 0 {
			return strings.Repeat("?", 110)
		}
		i += off
		if i >= 110 && bytes.HasPrefix(raw[i-110:], []byte("07070")) && i-110 >= 0 && (i-110)%4 == 0 {
			return string(raw[i-110 : i])
		}
		off = i + 1
	}
}

// TestLargePartsSplitIntoArchives: a part over 16 MiB of file data is
// written as several complete archives compressed in parallel; every file
// is still there once, and the bytes do not depend on GOMAXPROCS.
func TestLargePartsSplitIntoArchives(t *testing.T) {
	bb := staticBinary(t)
	dir := t.TempDir()
	for i := 0; i < 5; i++ {
		b := bytes.Repeat([]byte{byte(i), 1, 2, 3, byte(i * 3)}, (5<<20)/5)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), b, 0o644)
	}
	spec := func(c initramfs.Compression) *initramfs.Spec {
		return &initramfs.Spec{Init: bb, Includes: []initramfs.Include{{Host: dir, Archive: "/data"}}, Compression: c}
	}
	for _, comp := range []initramfs.Compression{initramfs.Zstd, initramfs.LZ4} {
		var blobs [][]byte
		for _, procs := range []int{1, 4} {
			old := runtime.GOMAXPROCS(procs)
			var buf bytes.Buffer
			_, err := (&initramfs.Builder{Version: "test"}).WriteTo(&buf, spec(comp))
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, buf.Bytes())
		}
		if !bytes.Equal(blobs[0], blobs[1]) {
			t.Fatalf("%s: bytes depend on GOMAXPROCS", comp)
		}
		raw := decompress(t, comp, blobs[0])
		if n := bytes.Count(raw, []byte("TRAILER!!!\x00")); n < 3 {
			t.Fatalf("%s: %d archives, want the 25 MiB part split into several plus the run part", comp, n)
		}
		m := readArchives(t, raw)
		for i := 0; i < 5; i++ {
			if got := m[fmt.Sprintf("data/f%d", i)]; len(got.data) != 5<<20 {
				t.Fatalf("%s: data/f%d has %d bytes", comp, i, len(got.data))
			}
		}
		if _, ok := m["init"]; !ok {
			t.Fatalf("%s: init missing", comp)
		}
	}
}
