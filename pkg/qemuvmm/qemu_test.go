package qemuvmm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/qemu"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/ktstr-go/ktstr/pkg/vmm"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// needQEMU returns the fixture kernel and an initramfs with nothing to
// run (the kernel panics: no init), or skips loudly.
func needQEMU(t *testing.T) (kernel, initrd string) {
	t.Helper()
	if _, err := qemu.Find(); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	kernel = testenv.Kernel(t)
	var b bytes.Buffer
	w := cpio.NewWriter(&b)
	w.WriteHeader(&cpio.Header{Name: "dev", Mode: cpio.TypeDir | 0o755})
	w.Close()
	initrd = filepath.Join(t.TempDir(), "empty.cpio")
	if err := os.WriteFile(initrd, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, initrd
}

func frames(t *testing.T, b []byte) []wire.Message {
	t.Helper()
	d := wire.NewDecoder(bytes.NewReader(b))
	var out []wire.Message
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if f.Flags&wire.FlagHost == 0 {
			t.Errorf("a guest frame from a guest with no init: %v", f.Type)
		}
		m, err := wire.Unmarshal(f.Type, f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

// TestBootEndings boots the fixture kernel under QEMU TCG and checks that
// the QEMU path ends runs with ktstr-boot's exit codes and frames: a
// kernel panic (no init) is 121, a run past its timeout 124, a signal
// 128+n; each stream is vm_start (vmm qemu, the RAM file at full size)
// then vm_exit.
func TestBootEndings(t *testing.T) {
	kernel, initrd := needQEMU(t)
	topo, err := topology.FromText("1n1l1c1t")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		timeout time.Duration
		signal  bool
		reason  string
		code    int
	}{
		{"panic", 60 * time.Second, false, vmm.ReasonPanic, vmm.ExitPanic},
		{"timeout", 500 * time.Millisecond, false, vmm.ReasonTimeout, vmm.ExitTimeout},
		{"signal", 60 * time.Second, true, vmm.ReasonSignal, vmm.ExitSignalBase + int(syscall.SIGTERM)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, con bytes.Buffer
			sigs := make(chan os.Signal, 1)
			if c.signal {
				go func() { time.Sleep(300 * time.Millisecond); sigs <- syscall.SIGTERM }()
			}
			memSize := make(chan int64, 1)
			res, err := Boot(context.Background(), BootConfig{
				Kernel: kernel, Initramfs: []string{initrd}, Topology: topo, Memory: 128 << 20,
				Cmdline: "rdinit=/nonexistent init=/nonexistent", Timeout: c.timeout,
				Stream: writerFunc(func(p []byte) (int, error) {
					if out.Len() == 0 { // the vm_start frame: its RAM file must be full size now
						ms := frames(t, p)
						if v, ok := ms[0].(wire.VMStart); ok {
							st, err := os.Stat(v.MemoryPath)
							if err != nil {
								t.Errorf("vm_start memory_path: %v", err)
							} else {
								memSize <- st.Size()
							}
						}
					}
					return out.Write(p)
				}),
				Console: &con, Signals: sigs,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Reason != c.reason || res.ExitCode != c.code {
				t.Fatalf("%s/%d (%s), want %s/%d; console tail: %s", res.Reason, res.ExitCode, res.Detail, c.reason, c.code, qemu.Tail(con.Bytes(), 600))
			}
			ms := frames(t, out.Bytes())
			if len(ms) != 2 {
				t.Fatalf("%d frames, want vm_start and vm_exit", len(ms))
			}
			vs, ok1 := ms[0].(wire.VMStart)
			ve, ok2 := ms[1].(wire.VMExit)
			if !ok1 || !ok2 || vs.VMM != "qemu" || vs.PID <= 0 || vs.MemorySize != 128<<20 || len(vs.Regions) != 1 || ve.Reason != c.reason || ve.ExitCode != c.code {
				t.Fatalf("frames: %+v %+v", ms[0], ms[1])
			}
			if sz := <-memSize; sz != 128<<20 {
				t.Errorf("RAM file was %d bytes when vm_start named it", sz)
			}
			if _, err := os.Stat(vs.MemoryPath); !os.IsNotExist(err) {
				t.Errorf("RAM file %s left behind: %v", vs.MemoryPath, err)
			}
			if c.name == "panic" && !strings.Contains(con.String(), "Kernel panic") {
				t.Errorf("console lacks the panic: %s", qemu.Tail(con.Bytes(), 600))
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
