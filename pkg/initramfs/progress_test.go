package initramfs_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/initramfs"
)

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &initramfs.Progress{W: &buf, Delay: time.Hour}
	p.Phase("quick", 10)
	p.Set(10)
	p.Done()
	if buf.Len() != 0 {
		t.Fatalf("a phase shorter than the delay printed %q", buf.String())
	}
	p.Delay = time.Millisecond
	p.Phase("packing base part", 4e6)
	p.Set(2e6)
	time.Sleep(100 * time.Millisecond)
	p.Done()
	out := buf.String()
	if !strings.Contains(out, "\rktstr-mkinitramfs: packing base part: 2.0 / 4.0 MB") || !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("progress output %q", out)
	}
	var nilP *initramfs.Progress // --no-progress: every method is a no-op
	nilP.Phase("x", 1)
	nilP.Set(1)
	nilP.Done()
}
