package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
)

// TestFindKernelBeside: the fixture kernel's vmlinux is found beside its
// bzImage and loads; a bzImage alone gives an error saying what to pass.
func TestFindKernelBeside(t *testing.T) {
	var logs strings.Builder
	logf := func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }
	lone := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(lone, []byte("x"), 0o644)
	if _, err := findKernel("", logf)(lone); err == nil || !strings.Contains(err.Error(), "--vmlinux") {
		t.Errorf("lone bzImage: %v", err)
	}
	bz := testenv.Need(t, testenv.KernelVar, "the fixture kernel, with its vmlinux beside it")
	k, err := findKernel("", logf)(bz)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(bz), "vmlinux"); k.Path != want || !strings.Contains(logs.String(), want) {
		t.Errorf("loaded %s, want %s; logs: %s", k.Path, want, logs.String())
	}
}
