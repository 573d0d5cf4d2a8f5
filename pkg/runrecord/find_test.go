package runrecord

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/regfile"
)

func mkfile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFindVariants: the walk finds every directory holding a meta.json or a
// stream.ktstr (a directory in a file's place too), no deeper than a
// variant name goes, without following symbolic links, each name once.
func TestFindVariants(t *testing.T) {
	dir := t.TempDir()
	mkfile(t, filepath.Join(dir, "a/b/c", MetaFile), nil)
	mkfile(t, filepath.Join(dir, "a/b/c", StreamFile), nil)
	mkfile(t, filepath.Join(dir, "a/b/d/k/rep2", StreamFile), nil)
	mkfile(t, filepath.Join(dir, "a/b/d/k/rep2/x", StreamFile), nil) // a variant inside a variant: too deep
	mkfile(t, filepath.Join(dir, "1/2/3/4/5/6", MetaFile), nil)      // deeper than any variant name
	mkfile(t, filepath.Join(dir, "x/y/z", ConsoleFile), nil)         // neither file: not a variant
	mkfile(t, filepath.Join(dir, MetaFile), nil)                     // the run directory itself is none
	if err := os.MkdirAll(filepath.Join(dir, "d/i/r", StreamFile), 0o755); err != nil {
		t.Fatal(err)
	}
	mkfile(t, filepath.Join(dir, "d/i/r", StreamFile, MetaFile), nil) // inside the directory: not walked
	other := t.TempDir()
	mkfile(t, filepath.Join(other, "s/c/p", StreamFile), nil)
	if err := os.Symlink(other, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got, err := FindVariants(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/b/c", "a/b/d/k/rep2", "d/i/r"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FindVariants = %q, want %q", got, want)
	}
	if got, err := FindVariants(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("empty run directory: %q %v", got, err)
	}
	if _, err := FindVariants(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing run directory: %v", err)
	}
}

// TestReadFIFO: a FIFO where run.json or meta.json belongs is refused at
// once (the open does not wait for a writer).
func TestReadFIFO(t *testing.T) {
	dir := t.TempDir()
	vdir := VariantDir(dir, "a/b/c")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, RunFile), filepath.Join(vdir, MetaFile)} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	// A blocked open never returns: the test's own timeout catches it (no
	// time bound here); no writer ever opens the FIFOs.
	if _, err := ReadRun(dir); !errors.Is(err, regfile.ErrNotRegular) {
		t.Errorf("run.json FIFO: %v", err)
	}
	if _, err := ReadMeta(dir, "a/b/c"); !errors.Is(err, regfile.ErrNotRegular) {
		t.Errorf("meta.json FIFO: %v", err)
	}
	os.Remove(filepath.Join(vdir, MetaFile))
	if err := os.Mkdir(filepath.Join(vdir, MetaFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(dir, "a/b/c"); !errors.Is(err, regfile.ErrNotRegular) {
		t.Errorf("meta.json directory: %v", err)
	}
}

// TestSizeBounds: a meta.json over MaxMetaSize is refused without being
// parsed; run.json holds MaxVariants of the longest names.
func TestSizeBounds(t *testing.T) {
	dir := t.TempDir()
	big := append([]byte(`{"variant":"a/b/c","verdict":"pass","reason":"`), bytes.Repeat([]byte("x"), MaxMetaSize)...)
	mkfile(t, filepath.Join(VariantDir(dir, "a/b/c"), MetaFile), append(big, `"}`...))
	if _, err := ReadMeta(dir, "a/b/c"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge meta.json: %v", err)
	}
	r := &Run{Started: time.Now().UTC(), Engine: EngineMake, Suite: strings.Repeat("s", 4096)}
	part := strings.Repeat("p", 64)
	for i := 0; len(r.Variants) < MaxVariants; i++ {
		r.Variants = append(r.Variants, part+"/"+part+"/"+part[:60]+string(rune('a'+i%26))+"/k"+strconv.Itoa(i/26))
	}
	if len(r.Variants[len(r.Variants)-1]) > MaxNameLen {
		t.Fatalf("name %d bytes", len(r.Variants[len(r.Variants)-1]))
	}
	if err := WriteRun(dir, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadRun(dir)
	if err != nil || len(back.Variants) != MaxVariants {
		t.Fatalf("a run.json of %d variants: %v", MaxVariants, err)
	}
	r.Variants = append(r.Variants, "one/more/variant")
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d variants accepted: %v", len(r.Variants), err)
	}
}
