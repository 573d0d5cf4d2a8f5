package vmm

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNameThread(t *testing.T) {
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		comm := fmt.Sprintf("/proc/self/task/%d/comm", unix.Gettid())
		before, _ := os.ReadFile(comm)
		restore := nameThread("CPU 12/KVM")
		named, _ := os.ReadFile(comm)
		restore()
		after, _ := os.ReadFile(comm)
		switch {
		case strings.TrimSpace(string(named)) != "CPU 12/KVM":
			done <- fmt.Errorf("named %q", named)
		case string(after) != string(before):
			done <- fmt.Errorf("restored %q, was %q", after, before)
		default:
			done <- nil
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
