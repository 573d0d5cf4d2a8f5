package kvm

import (
	"fmt"
	"unsafe"
)

// enableCap is struct kvm_enable_cap.
type enableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]byte
}

var kvmEnableCap = iow(0xa3, sizeOf[enableCap]())

// Capabilities used by topology and performance mode.
const (
	CapNrVCPUs         = 9
	CapMaxVCPUs        = 66
	CapMaxVCPUID       = 128
	CapX86DisableExits = 143
)

// EnableCap issues KVM_ENABLE_CAP on the VM with up to four arguments.
func (vm *VM) EnableCap(cap uint32, args ...uint64) error {
	if len(args) > 4 {
		return fmt.Errorf("KVM_ENABLE_CAP %d: %d arguments, at most 4", cap, len(args))
	}
	ec := enableCap{Cap: cap}
	copy(ec.Args[:], args)
	if _, err := ioctl(vm.fd, kvmEnableCap, uintptr(unsafe.Pointer(&ec))); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %d: %w", cap, err)
	}
	return nil
}

// System returns the /dev/kvm handle the VM was created from.
func (vm *VM) System() *System { return vm.sys }
