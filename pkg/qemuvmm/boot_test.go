package qemuvmm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/qemu"
)

func TestCmdlineOf(t *testing.T) {
	o := qemu.Options{Kernel: "/k", Initramfs: "/i", Cmdline: "ktstr.hold=1"}
	if c := cmdlineOf(qemu.Args(&o, "")); !strings.HasPrefix(c, qemu.BaseCmdline) || !strings.HasSuffix(c, " ktstr.hold=1") {
		t.Errorf("cmdlineOf: %q", c)
	}
	if c := cmdlineOf([]string{"-append"}); c != "" {
		t.Errorf("cmdlineOf without a value: %q", c)
	}
}

func TestJoinInitramfs(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("AAA"), 0o644)
	os.WriteFile(b, []byte("BB"), 0o644)
	if p, err := joinInitramfs(dir, []string{a}); err != nil || p != a {
		t.Errorf("one blob: %q %v", p, err)
	}
	p, err := joinInitramfs(dir, []string{a, b})
	if got, _ := os.ReadFile(p); err != nil || string(got) != "AAABB" {
		t.Errorf("two blobs: %q %v", got, err)
	}
	if _, err := joinInitramfs(dir, nil); err == nil {
		t.Error("no blob accepted")
	}
	if _, err := joinInitramfs(dir, []string{a, "/nonexistent"}); err == nil {
		t.Error("missing blob accepted")
	}
}
