package monitore2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/lab"
)

// TestMonitorNestedBoot (KTSTR_E2E_NESTED=1; minutes) runs the pipeline the
// design is for, ktstr-boot | ktstr-monitor --tee, inside the nested lab's
// L1, where /dev/kvm is real: ktstr-monitor finds guest RAM through the
// memfd path in ktstr-boot's VMStart frame, with no --guest-mem. One vCPU:
// multi-vCPU nested L2 guests are unreliable in this lab (lab-notes.md).
//
// Status (2026-11-27): passed in 80 s (L1 up in 10.6 s; inside L1 1m05s:
// kernel found via the memfd path, 385 samples, clocks advancing,
// nr_running up to 6, no violation, exit 0). An earlier try hung: L1's
// agent stopped answering during the inner command, as the lab notes
// describe for nested guests. Off by default for that reason and its
// time; test/e2e.sh runs it when KTSTR_E2E_NESTED=1.
func TestMonitorNestedBoot(t *testing.T) {
	if os.Getenv("KTSTR_E2E_NESTED") != "1" {
		t.Skip("SKIP: KTSTR_E2E_NESTED is not 1: ktstr-boot | ktstr-monitor in the nested lab is NOT tested in this run (it takes minutes)")
	}
	e := need(t)
	ctx := context.Background()
	agent, data, err := lab.BuildWorkdir(ctx, t.TempDir(), "cmd/ktstr-boot", "cmd/ktstr-monitor")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(e.initrd)
	os.WriteFile(filepath.Join(data, "initrd.cpio"), b, 0o644)
	var n *lab.Nested
	for a := 1; a <= 2; a++ {
		n, err = lab.StartNested(ctx, lab.NestedOptions{
			Agent: agent,
			Shares: []lab.Share{{Tag: "data", HostPath: data, GuestPath: "/data", Pack: true},
				{Tag: "kernel", HostPath: filepath.Dir(e.kernel), GuestPath: "/kernel"}},
			MemoryMiB: 2048, BootTimeout: 150 * time.Second, Lifetime: 10 * time.Minute,
		})
		if err == nil {
			break
		}
		t.Logf("L1 boot attempt %d failed: %v", a, err)
	}
	if err != nil {
		t.Fatalf("nested lab: %v", err)
	}
	defer n.Close()
	t.Logf("L1 up in %v", n.BootTime.Round(time.Millisecond))
	cmd := "cd /data && ./ktstr-boot --kernel /kernel/" + filepath.Base(e.kernel) +
		" --initramfs /data/initrd.cpio --cpus 1 --memory 512M --timeout 180s --console /tmp/console.log" +
		" --append 'ktstr.mode=spin ktstr.secs=4' | timeout 200 ./ktstr-monitor --vmlinux /kernel/" + filepath.Base(e.vmlinux) +
		" --tee --json --warmup-samples 5 >/tmp/out.ktstr 2>/tmp/report; echo rc=$?; cat /tmp/report; tail -5 /tmp/console.log"
	r, err := n.Run(ctx, cmd, 4*time.Minute)
	if err != nil {
		t.Fatalf("nested lab: %v", err)
	}
	out := string(r.Stdout) + string(r.Stderr)
	t.Logf("inside L1 (%v):\n%s", r.Wall.Round(time.Second), out)
	var sum struct {
		Samples        int    `json:"samples"`
		MaxNrRunning   uint32 `json:"max_nr_running"`
		ClocksAdvanced bool   `json:"clocks_advanced"`
		KernelFound    bool   `json:"kernel_found"`
		Frames         int    `json:"frames"`
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"event":"summary"`) {
			json.Unmarshal([]byte(l), &sum)
		}
	}
	if !sum.KernelFound || sum.Samples < 20 || !sum.ClocksAdvanced || sum.MaxNrRunning < 2 || sum.Frames == 0 {
		t.Errorf("summary %+v: want the kernel found through VMStart's memory path, 20+ samples, advancing clocks, nr_running >= 2, guest frames", sum)
	}
}
