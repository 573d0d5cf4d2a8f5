package lab

import (
	"os"
	"testing"
)

// TestProbeKVM runs the probe on this machine's /dev/kvm and checks that
// its decision is consistent with the rate it measured.
func TestProbeKVM(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("SKIP: no /dev/kvm on this machine: %v", err)
	}
	p := ProbeKVM("")
	t.Logf("probe: %s", p.Reason)
	switch p.Kind {
	case KVMHardware:
		if p.Rate < HardwareRate {
			t.Errorf("hardware with rate %v", p.Rate)
		}
	case KVMEmulated:
		if p.Rate >= HardwareRate || p.Rate <= 0 {
			t.Errorf("emulated with rate %v", p.Rate)
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
