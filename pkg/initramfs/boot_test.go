package initramfs_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/initramfs"
)

// buildStaticInit compiles testdata/bootinit.go.txt into a static binary.
func buildStaticInit(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/bootinit.go.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module bootinit\n\ngo 1.21\n"), 0o644)
	out := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test init: %v\n%s", err, b)
	}
	return out
}

// TestKernelBootsResult boots the fixture kernel under QEMU TCG three
// times, covering every compression in three boots: a zstd blob, a gzip
// base part followed by an lz4 run part (the parts of two builds,
// concatenated: mixed compressions in one initrd), and an uncompressed
// blob. The static test init checks /dev/console (char 5,1) and a file of
// each part. tsc_early_khz, tsc=reliable and no_timer_check keep a loaded
// host from hanging TCG boots in PIT calibration ("tsc: Unable to
// calibrate against PIT", then nothing; seen with 7 QEMUs on 2 cores).
func TestKernelBootsResult(t *testing.T) {
	kernel := testenv.Need(t, testenv.KernelVar, "the kernel-boots-the-archive test did not run")
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("SKIP LOUDLY: qemu-system-x86_64 not installed: the kernel-boots-the-archive test did not run")
	}
	sched := fixtureScheduler(t)
	init := buildStaticInit(t)
	cache := openCache(t)
	spec := func(c initramfs.Compression) *initramfs.Spec {
		return &initramfs.Spec{Init: init, Scheduler: sched, SchedulerArgs: []string{"-v"}, Compression: c}
	}
	build := func(c initramfs.Compression) *initramfs.Result {
		b := &initramfs.Builder{Cache: cache, Version: "test"}
		r, err := b.Build(spec(c))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// gzip first: an LZ4 legacy stream has no end marker, and the
	// kernel's unlz4 reads on to the end of the initrd ("Decoding failed"
	// when a non-lz4 part follows), so lz4 parts can only be followed by
	// lz4 parts.
	mixed := filepath.Join(t.TempDir(), "gzip-base+lz4-run.cpio")
	gz, lz := build(initramfs.Gzip), build(initramfs.LZ4)
	var cat []byte
	for _, p := range []string{gz.BasePath, lz.RunPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cat = append(cat, b...)
	}
	if err := os.WriteFile(mixed, cat, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, blob string }{
		{"zstd", build(initramfs.Zstd).Path},
		{"gzip+lz4", mixed},
		{"none", build(initramfs.None).Path},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := bootQEMU(t, qemu, kernel, c.blob)
			if !strings.Contains(out, "KTSTR-BOOT-OK") {
				t.Fatalf("guest did not report success; console:\n%s", tail(out, 3000))
			}
		})
	}
}

func bootQEMU(t *testing.T, qemu, kernel, blob string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", blob, "-append", "console=ttyS0 panic=-1 quiet tsc_early_khz=2000000 tsc=reliable no_timer_check")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("boot of %s took %v", filepath.Base(blob), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("guest did not power off within 60 s; console:\n%s", tail(out.String(), 3000))
	}
	if err != nil {
		t.Logf("qemu: %v", err)
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func fixtureScheduler(t *testing.T) string {
	t.Helper()
	return testenv.Scheduler(t, "scx_simple")
}

func openCache(t *testing.T) *initramfs.Cache {
	t.Helper()
	c, err := initramfs.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
