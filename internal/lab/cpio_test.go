package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchiveExtracts writes an archive and unpacks it with the system's
// cpio, the same newc reader family the kernel implements.
func TestArchiveExtracts(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("SKIP: cpio (apt-get install cpio) is missing, cannot cross-check the archive")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "f"), []byte("tree file"), 0o640)
	os.Symlink("sub/f", filepath.Join(src, "l"))
	a := NewArchive()
	a.Bytes("/etc/x", 0o600, []byte("hello"))
	a.Bytes("odd", 0o755, []byte("abc")) // length not a multiple of 4
	a.Bytes("empty", 0o644, nil)
	a.Symlink("/bin/sh", "busybox")
	if err := a.Tree("/t", src); err != nil {
		t.Fatal(err)
	}
	var b1, b2 bytes.Buffer
	if _, err := a.WriteTo(&b1); err != nil {
		t.Fatal(err)
	}
	a.WriteTo(&b2)
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("archive is not reproducible")
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	cmd := exec.Command(cpio, "-id", "--quiet")
	cmd.Dir, cmd.Stdin = out, &b1
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v: %s", err, o)
	}
	for _, c := range []struct {
		path, want string
		mode       os.FileMode
	}{
		{"etc/x", "hello", 0o600},
		{"odd", "abc", 0o755},
		{"empty", "", 0o644},
		{"t/sub/f", "tree file", 0o640},
	} {
		got, err := os.ReadFile(filepath.Join(out, c.path))
		if err != nil || string(got) != c.want {
			t.Errorf("%s = %q, %v; want %q", c.path, got, err, c.want)
			continue
		}
		if st, _ := os.Stat(filepath.Join(out, c.path)); st.Mode().Perm() != c.mode {
			t.Errorf("%s mode %v, want %v", c.path, st.Mode().Perm(), c.mode)
		}
	}
	for p, want := range map[string]string{"bin/sh": "busybox", "t/l": "sub/f"} {
		if got, err := os.Readlink(filepath.Join(out, p)); err != nil || got != want {
			t.Errorf("link %s = %q, %v; want %q", p, got, err, want)
		}
	}
	if !strings.Contains(b2.String(), "TRAILER!!!\x00") || b2.Len()%4 != 0 {
		t.Errorf("archive lacks the trailer or 4-byte alignment (len %d)", b2.Len())
	}
}
