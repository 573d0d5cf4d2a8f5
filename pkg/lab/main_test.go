package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The nested lab's L1 is booted once for the whole package's tests (it
// takes tens of seconds under TCG) by sharedL1, and closed by TestMain.
var (
	l1Once sync.Once
	l1     *Nested
	l1Err  error
	l1Dir  string
)

func TestMain(m *testing.M) {
	if miss := Missing(); miss != "" {
		// go test hides t.Skip messages without -v: say it once, loudly.
		fmt.Fprintf(os.Stderr, "pkg/lab: SKIPPING every QEMU boot test: %s\n", miss)
	}
	code := m.Run()
	if l1 != nil {
		l1.Close()
	}
	if l1Dir != "" {
		os.RemoveAll(l1Dir)
	}
	os.Exit(code)
}

// l1Attempts is the nested lab's boot retry policy: a boot that does not
// reach the agent within its timeout is retried once, and each failure is
// logged; two failures in a row fail the test.
const l1Attempts = 2

func sharedL1(t *testing.T) *Nested {
	t.Helper()
	needLab(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("SKIP: the nested lab needs an x86_64 host")
	}
	l1Once.Do(func() {
		var err error
		l1Dir, err = os.MkdirTemp("", "ktstr-lab-test-")
		if err != nil {
			l1Err = err
			return
		}
		agent, err := BuildAgent(context.Background(), l1Dir)
		if err != nil {
			l1Err = err
			return
		}
		data := filepath.Join(l1Dir, "data")
		os.Mkdir(data, 0o755)
		for a := 1; a <= l1Attempts; a++ {
			l1, l1Err = StartNested(context.Background(), NestedOptions{
				Agent:       agent,
				MkInitramfs: FindMkInitramfs(),
				Shares:      []Share{{Tag: "data", HostPath: data, GuestPath: "/data"}},
				BootTimeout: 120 * time.Second,
				Lifetime:    20 * time.Minute,
			})
			if l1Err == nil {
				how := "ktstr-mkinitramfs"
				if FindMkInitramfs() == "" {
					how = "the lab's cpio writer (ktstr-mkinitramfs not built: run make)"
				}
				fmt.Fprintf(os.Stderr, "pkg/lab: L1 (initramfs by %s) booted in %v (guest uptime %v), attempt %d\n", how, l1.BootTime.Round(time.Millisecond), l1.GuestUptime, a)
				return
			}
			fmt.Fprintf(os.Stderr, "pkg/lab: L1 boot attempt %d/%d FAILED: %v\n", a, l1Attempts, l1Err)
		}
	})
	if l1Err != nil {
		t.Fatalf("nested lab: %v", l1Err)
	}
	return l1
}

func l1DataDir() string { return filepath.Join(l1Dir, "data") }
