package initramfs_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/initramfs"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
)

// TestDynamicIncludeAndRunpathLibraries: an executable ELF include gets
// its interpreter and libraries (at their real paths, with links where
// the loader looks), and a library found through an $ORIGIN RUNPATH is
// packed and named in LD_LIBRARY_PATH of the run configuration.
func TestDynamicIncludeAndRunpathLibraries(t *testing.T) {
	bb := staticBinary(t)
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip("SKIP LOUDLY: /bin/ls missing: this test did not run")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("SKIP LOUDLY: no C compiler (cc): the RUNPATH part of this test did not run")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "foo.c"), []byte("int foo(void){return 0;}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.c"), []byte("int foo(void); int main(void){return foo();}\n"), 0o644)
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-o", filepath.Join(dir, "lib", "libfoo.so"), filepath.Join(dir, "foo.c")},
		{"-o", filepath.Join(dir, "sched"), filepath.Join(dir, "main.c"), "-L" + filepath.Join(dir, "lib"), "-lfoo", "-Wl,-rpath,$ORIGIN/lib", "-Wl,--enable-new-dtags"},
	} {
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Skipf("SKIP LOUDLY: cc cannot build shared objects here: %v %s", err, out)
		}
	}
	var buf bytes.Buffer
	_, err = (&initramfs.Builder{Version: "test"}).WriteTo(&buf, &initramfs.Spec{Init: bb, Scheduler: filepath.Join(dir, "sched"),
		Includes: []initramfs.Include{{Host: "/bin/ls", Archive: "/usr/bin/ls"}}, Compression: initramfs.None})
	if err != nil {
		t.Fatal(err)
	}
	m := readArchives(t, buf.Bytes())
	info, _ := os.Stat("/bin/ls")
	if got, ok := m["usr/bin/ls"]; !ok || int64(len(got.data)) != info.Size() {
		t.Fatal("/usr/bin/ls missing or truncated")
	}
	var libc, interp bool
	for name, e := range m {
		libc = libc || strings.HasPrefix(filepath.Base(name), "libc.so")
		interp = interp || (name == "lib64/ld-linux-x86-64.so.2" && e.hdr.Linkname != "")
	}
	if !libc || !interp {
		t.Fatalf("libc packed %v, /lib64/ld-linux-x86-64.so.2 link %v", libc, interp)
	}
	realLib, _ := filepath.EvalSymlinks(filepath.Join(dir, "lib", "libfoo.so"))
	if _, ok := m[strings.TrimPrefix(realLib, "/")]; !ok {
		t.Fatalf("libfoo.so (%s) not packed", realLib)
	}
	cfg, err := runconfig.Unmarshal(m[strings.TrimPrefix(runconfig.Path, "/")].data)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Env["LD_LIBRARY_PATH"]; got != filepath.Join(dir, "lib") {
		t.Fatalf("LD_LIBRARY_PATH %q, want %s", got, filepath.Join(dir, "lib"))
	}
}
