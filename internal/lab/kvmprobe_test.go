package lab

import (
	"os"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/kvmprobe"
)

// TestProbeKVM runs the probe on this machine's /dev/kvm and checks that
// its decision is consistent with the ratio it measured.
func TestProbeKVM(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("SKIP: no /dev/kvm on this machine: %v", err)
	}
	p := ProbeKVM("")
	t.Logf("probe: %s", p.Reason)
	switch p.Kind {
	case KVMHardware, KVMEmulated:
		if p.Rate <= 0 || kvmprobe.Decide(p.Result.Ratio) != p.Kind {
			t.Errorf("%s with evidence %s", p.Kind, p.Result.Evidence())
		}
	default:
		t.Fatalf("probe failed on an existing /dev/kvm: %s", p.Reason)
	}
}

func TestProbeKVMMissing(t *testing.T) {
	p := ProbeKVM("/nonexistent/kvm")
	if p.Kind != KVMNone || p.Reason == "" {
		t.Errorf("probe of a missing device: %+v", p)
	}
}
