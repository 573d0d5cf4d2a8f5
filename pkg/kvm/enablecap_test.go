package kvm

import (
	"testing"
	"unsafe"
)

// KVM_ENABLE_CAP is _IOW(KVMIO, 0xa3, struct kvm_enable_cap), 104 bytes.
func TestEnableCapLayout(t *testing.T) {
	if s := unsafe.Sizeof(enableCap{}); s != 104 {
		t.Errorf("kvm_enable_cap is %d bytes, want 104", s)
	}
	if kvmEnableCap != 0x4068AEA3 {
		t.Errorf("KVM_ENABLE_CAP = %#x, want 0x4068aea3", kvmEnableCap)
	}
}
