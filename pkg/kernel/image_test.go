package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/ktstr-go/ktstr/internal/testenv"
)

const testConfig = "CONFIG_SCHED_CLASS_EXT=y\n# CONFIG_MODULES is not set\nCONFIG_HZ=1000\n"

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// fakeVmlinux is a kernel image as the payload holds it: code, a decoy
// marker without a gzip member, then kernel/configs.c's data.
func fakeVmlinux(t testing.TB, withConfig bool) []byte {
	var b bytes.Buffer
	b.WriteString("\x7fELF")
	b.Write(bytes.Repeat([]byte{0x90}, 3<<20)) // past one scan chunk
	b.WriteString("IKCFG_ST not a member")
	b.Write(bytes.Repeat([]byte{0xcc}, 1000))
	if withConfig {
		b.WriteString("IKCFG_ST")
		b.Write(gz(t, []byte(testConfig)))
		b.WriteString("IKCFG_ED")
	}
	b.Write(bytes.Repeat([]byte{0}, 4096))
	return b.Bytes()
}

// fakeBzImage wraps a compressed payload in a boot-protocol 2.15 header
// with the 4-byte decompressed size appended, as the kernel's mkpiggy does.
func fakeBzImage(payload []byte, size int) []byte {
	img := make([]byte, 2*512)
	img[0x1f1] = 1 // setup sectors: protected-mode code at 1024
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 64)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)+4))
	img = append(img, make([]byte, 64)...)
	img = append(img, payload...)
	img = binary.LittleEndian.AppendUint32(img, uint32(size))
	return append(img, make([]byte, 100)...)
}

func compressWith(t *testing.T, name string, b []byte) []byte {
	var buf bytes.Buffer
	switch name {
	case "gzip":
		return gz(t, b)
	case "zstd":
		w, _ := zstd.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "lz4":
		w := lz4.NewWriter(&buf)
		w.Apply(lz4.LegacyOption(true))
		w.Write(b)
		w.Close()
	default: // an external tool: bzip2, xz, lzma
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("SKIP: %s not installed, cannot make a %s payload", name, name)
		}
		cmd := exec.Command(name, "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	return buf.Bytes()
}

func writeTemp(t *testing.T, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadIKConfigPayloads(t *testing.T) {
	vml := fakeVmlinux(t, true)
	for _, tt := range []struct {
		comp        string
		unsupported bool
	}{{"gzip", false}, {"zstd", false}, {"lz4", false}, {"bzip2", false}, {"xz", true}, {"lzma", true}} {
		t.Run(tt.comp, func(t *testing.T) {
			p := writeTemp(t, "bzImage", fakeBzImage(compressWith(t, tt.comp, vml), len(vml)))
			cfg, comp, err := ReadIKConfig(p)
			if comp != tt.comp {
				t.Errorf("compression %q, want %q", comp, tt.comp)
			}
			if tt.unsupported {
				var uce *UnsupportedCompressionError
				if !errors.As(err, &uce) || !strings.Contains(err.Error(), "put the kernel's .config beside it") {
					t.Fatalf("err = %v, want UnsupportedCompressionError saying what to do", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Get("SCHED_CLASS_EXT") != "y" || cfg.Get("HZ") != "1000" || len(cfg) != 2 {
				t.Errorf("config = %v", cfg)
			}
		})
	}
}

func TestReadIKConfigBad(t *testing.T) {
	vml := fakeVmlinux(t, true)
	good := fakeBzImage(gz(t, vml), len(vml))
	noCfg := fakeVmlinux(t, false)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	for i := 1024 + 64 + 100; i < 1024+64+1000; i++ {
		corrupt[i] ^= 0x5a
	}
	for _, tt := range []struct {
		name string
		path string
		want error  // errors.Is target, or nil to only require an error
		text string // in the message
	}{
		{"no IKCONFIG bzImage", writeTemp(t, "a", fakeBzImage(gz(t, noCfg), len(noCfg))), ErrNoIKConfig, "CONFIG_IKCONFIG"},
		{"no IKCONFIG vmlinux", writeTemp(t, "b", noCfg), ErrNoIKConfig, ""},
		{"truncated bzImage", writeTemp(t, "c", good[:len(good)/2]), nil, "truncated or corrupt"},
		{"header only", writeTemp(t, "d", good[:0x268]), nil, "truncated"},
		{"corrupt payload", writeTemp(t, "e", corrupt), nil, "decompress"},
		{"text file", writeTemp(t, "f", []byte("hello\n")), ErrNotKernel, ""},
		{"empty", writeTemp(t, "g", nil), ErrNotKernel, ""},
		{"dev zero", "/dev/zero", nil, "not a regular file"},
		{"fifo", fifo, nil, "not a regular file"},
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadIKConfig(tt.path)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want it to say %q", err, tt.text)
			}
		})
	}
}

// TestLoadConfigBeside: without IKCONFIG, the config beside the image is
// used (config-VERSION for vmlinuz-VERSION, .config in a source tree).
func TestLoadConfigBeside(t *testing.T) {
	noCfg := fakeVmlinux(t, false)
	img := fakeBzImage(gz(t, noCfg), len(noCfg))
	boot := t.TempDir()
	os.WriteFile(filepath.Join(boot, "vmlinuz-6.12.0-test"), img, 0o644)
	os.WriteFile(filepath.Join(boot, "config-6.12.0-test"), []byte("CONFIG_NUMA=y\n"), 0o644)
	os.WriteFile(filepath.Join(boot, "config"), []byte("CONFIG_WRONG=y\n"), 0o644)
	cfg, src, err := LoadConfig(filepath.Join(boot, "vmlinuz-6.12.0-test"))
	if err != nil || cfg.Get("NUMA") != "y" || !strings.Contains(src, "config-6.12.0-test") {
		t.Fatalf("cfg=%v src=%q err=%v", cfg, src, err)
	}
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "arch/x86/boot"), 0o755)
	os.WriteFile(filepath.Join(tree, "arch/x86/boot/bzImage"), img, 0o644)
	os.WriteFile(filepath.Join(tree, ".config"), []byte("CONFIG_SMP=y\n"), 0o644)
	cfg, _, err = LoadConfig(filepath.Join(tree, "arch/x86/boot/bzImage"))
	if err != nil || cfg.Get("SMP") != "y" {
		t.Fatalf("tree: cfg=%v err=%v", cfg, err)
	}
	// A .config given directly.
	cfg, _, err = LoadConfig(filepath.Join(tree, ".config"))
	if err != nil || cfg.Get("SMP") != "y" {
		t.Fatalf(".config: cfg=%v err=%v", cfg, err)
	}
	// A gzipped config (as /proc/config.gz).
	cfg, _, err = LoadConfig(writeTemp(t, "config.gz", gz(t, []byte("CONFIG_SMP=y\n"))))
	if err != nil || cfg.Get("SMP") != "y" {
		t.Fatalf("config.gz: cfg=%v err=%v", cfg, err)
	}
	// Nothing beside: the error says what to do.
	lone := writeTemp(t, "bzImage", img)
	if _, _, err := LoadConfig(lone); err == nil || !strings.Contains(err.Error(), "copy the kernel's .config there") {
		t.Fatalf("lone image: err = %v", err)
	}
}

// TestFixtureKernel: the fixture's embedded configuration is the config
// file beside it, and check calls it usable.
func TestFixtureKernel(t *testing.T) {
	bz := testenv.Kernel(t)
	cfg, comp, err := ReadIKConfig(bz)
	if err != nil {
		t.Fatalf("%s: %v", bz, err)
	}
	beside := Companions(bz).Config
	if beside == "" {
		t.Skipf("SKIP: no config beside %s to compare with", bz)
	}
	file, err := ReadConfigFile(beside)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg) != len(file) {
		t.Errorf("IKCONFIG (%s) has %d symbols, %s has %d", comp, len(cfg), beside, len(file))
	}
	for k, v := range file {
		if cfg[k] != v {
			t.Errorf("%s: IKCONFIG %q, file %q", k, cfg[k], v)
		}
	}
	if r := Check(cfg, bz, false); !r.Usable {
		var b bytes.Buffer
		r.Print(&b)
		t.Errorf("fixture kernel not usable:\n%s", b.String())
	}
}

func FuzzScanIKConfig(f *testing.F) {
	f.Add([]byte("xxIKCFG_ST"))
	f.Add(append([]byte("IKCFG_ST"), gz(f, []byte(testConfig))...))
	f.Add(fakeBzImage([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, 10))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := scanIKConfig(bytes.NewReader(data))
		if err == nil && len(cfg) == 0 && !bytes.Contains(data, []byte("IKCFG_ST")) {
			t.Fatal("a configuration without a marker")
		}
		// The same bytes as a file: a bzImage header, a vmlinux or junk.
		if len(data) >= 0x268 {
			if r, _, err := BzImagePayload(bytes.NewReader(data), int64(len(data))); err == nil {
				scanIKConfig(r)
			}
		}
	})
}
