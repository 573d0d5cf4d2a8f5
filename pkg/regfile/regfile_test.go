package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "f")
	os.WriteFile(reg, []byte("abc"), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f, st, err := Open(reg, os.O_RDONLY)
	if err != nil || st.Size() != 3 {
		t.Fatalf("regular file: %v %v", st, err)
	}
	f.Close()
	for _, c := range []struct{ path, kind string }{
		{fifo, "FIFO"}, {dir, "directory"}, {"/dev/zero", "character device"}, {"/dev/null", "character device"},
	} {
		done := make(chan error, 1)
		go func() { _, _, err := Open(c.path, os.O_RDONLY); done <- err }()
		select {
		case err := <-done:
			var nr *NotRegularError
			if !errors.As(err, &nr) || nr.Kind != c.kind || !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v, want a %s refused", c.path, err, c.kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Open blocked", c.path)
		}
	}
	if _, _, err := Open(filepath.Join(dir, "missing"), os.O_RDONLY); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if k := Kind(os.ModeSocket); k != "socket" {
		t.Errorf("Kind(socket) = %q", k)
	}
}
