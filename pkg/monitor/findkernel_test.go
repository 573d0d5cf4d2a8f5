package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/kernelsym"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestFindKernelFromVMStart: without a kernel given, the monitor asks
// FindKernel for the bzImage VMStart names, and says why it cannot sample
// when none is found; with a kernel given it never asks.
func TestFindKernelFromVMStart(t *testing.T) {
	mem := filepath.Join(t.TempDir(), "ram")
	os.WriteFile(mem, make([]byte, 4096), 0o644)
	r := newRecording()
	r.add(wire.VMStart{VMM: "recording", VCPUs: 1, MemorySize: 4096, MemoryPath: mem, Kernel: "/k/bzImage"})
	stream := r.buf.Bytes()
	for _, given := range []bool{false, true} {
		var asked []string
		var logs strings.Builder
		o := Options{
			In: bytes.NewReader(stream), Out: &bytes.Buffer{}, Report: &bytes.Buffer{}, Thresholds: DefaultThresholds,
			Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) },
			FindKernel: func(bz string) (*kernelsym.Kernel, error) {
				asked = append(asked, bz)
				return nil, errors.New("none beside it")
			},
		}
		if given {
			o.Kernel = &kernelsym.Kernel{}
			o.In = bytes.NewReader(nil) // no VMStart: nothing to sample
		}
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if given {
			if len(asked) != 0 {
				t.Errorf("asked %v with a kernel given", asked)
			}
			continue
		}
		if len(asked) != 1 || asked[0] != "/k/bzImage" {
			t.Errorf("FindKernel asked for %v", asked)
		}
		if !strings.Contains(logs.String(), "no vmlinux for the guest kernel: none beside it") || !strings.Contains(logs.String(), "not sampling guest memory") {
			t.Errorf("logs:\n%s", logs.String())
		}
	}
}
