package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/kernel"
)

func TestResolveKernel(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bzImage")
	os.WriteFile(file, []byte("not checked here"), 0o644)
	tree := filepath.Join(dir, "linux")
	os.MkdirAll(filepath.Join(tree, "arch/x86/boot"), 0o755)
	os.WriteFile(filepath.Join(tree, "arch/x86/boot/bzImage"), []byte("x"), 0o644)
	cacheDir := filepath.Join(dir, "cache")
	t.Setenv("KTSTR_KERNEL_CACHE_DIR", cacheDir)
	c, err := kernel.OpenCache(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	os.WriteFile(cfg, []byte("CONFIG_A=y\n"), 0o644)
	e, err := c.Publish("6.12.5", map[string]string{kernel.FileBzImage: file, kernel.FileConfig: cfg}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec, want, err string
	}{
		{file, file, ""},               // a file: as given, judged later
		{"/dev/zero", "/dev/zero", ""}, // likewise (refused by run's checks)
		{tree, filepath.Join(tree, "arch/x86/boot/bzImage"), ""},
		{"6.12", filepath.Join(e.Dir, "bzImage"), ""},
		{e.Key, filepath.Join(e.Dir, "bzImage"), ""},
		{filepath.Join(dir, "missing"), "", "does not exist"},
		{"7.0", "", "ktstr-kernel list"},
	} {
		got, release, err := resolveKernel(tt.spec)
		release()
		if tt.err != "" {
			var ee *cmdutil.ExitError
			if !errors.As(err, &ee) || ee.Code != cmdutil.ExitUsage || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want exit 2 saying %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.spec, got, err, tt.want)
		}
	}
}
