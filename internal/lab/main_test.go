package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
		fmt.Fprintf(os.Stderr, "internal/lab: SKIPPING every QEMU boot test: %s\n", miss)
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
// reach the agent within its timeout is retried, and each failure is
// logged; LabAttempts failures in a row fail the test.
const l1Attempts = LabAttempts

// runL1 runs cmd in the shared L1. Retry policy for a lab failure
// (LabAttempts, docs/nested-lab.md): when L1 stops answering
// (ErrAgentLost), L1 is booted again and cmd rerun; the event is printed.
// Command results (exit status, output) are never retried here.
func runL1(t *testing.T, cmd string, timeout time.Duration) *RunResult {
	t.Helper()
	for attempt := 1; ; attempt++ {
		n := sharedL1(t)
		r, err := n.Run(context.Background(), cmd, timeout)
		if err == nil {
			return r
		}
		if !errors.Is(err, ErrAgentLost) {
			t.Fatal(err)
		}
		if attempt == LabAttempts {
			t.Fatalf("nested lab failed %d times in a row: %v", attempt, err)
		}
		regs, _ := n.Monitor("info registers")
		fmt.Fprintf(os.Stderr, "internal/lab: L1 STOPPED ANSWERING on attempt %d of %d (retry policy: fresh L1): %v\nL1 registers:\n%s\n", attempt, LabAttempts, err, firstLines(regs, 8))
		n.Close()
		l1, l1Err = nil, nil
		l1Once = sync.Once{}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func sharedL1(t *testing.T) *Nested {
	t.Helper()
	needLab(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("SKIP: the nested lab needs an x86_64 host")
	}
	l1Once.Do(func() {
		var err error
		if l1Dir == "" {
			if l1Dir, err = os.MkdirTemp("", "ktstr-lab-test-"); err != nil {
				l1Err = err
				return
			}
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
				fmt.Fprintf(os.Stderr, "internal/lab: L1 (initramfs by %s) booted in %v (guest uptime %v), attempt %d\n", how, l1.BootTime.Round(time.Millisecond), l1.GuestUptime, a)
				return
			}
			fmt.Fprintf(os.Stderr, "internal/lab: L1 boot attempt %d/%d FAILED: %v\n", a, l1Attempts, l1Err)
		}
	})
	if l1Err != nil {
		t.Fatalf("nested lab: %v", l1Err)
	}
	return l1
}

func l1DataDir() string { return filepath.Join(l1Dir, "data") }
