package qemu

import (
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/kvmprobe"
)

// VMM modes (ktstr-boot --vmm).
const (
	ModeKVM  = "kvm"  // ktstr-boot's own VMM on /dev/kvm, no probe
	ModeQEMU = "qemu" // QEMU: -accel kvm where the probe finds hardware KVM, else TCG
	ModeAuto = "auto" // ktstr-boot's VMM on hardware KVM, else QEMU TCG
)

// Choice is which VMM runs the guest, and why.
type Choice struct {
	QEMU bool // false: ktstr-boot's own VMM on /dev/kvm
	KVM  bool // QEMU only: -accel kvm (else TCG)
	Why  string
}

// String names the VMM as ktstr-boot reports it.
func (c Choice) String() string {
	switch {
	case !c.QEMU:
		return "ktstr-boot's VMM on /dev/kvm"
	case c.KVM:
		return "QEMU -accel kvm"
	}
	return "QEMU TCG (software emulation)"
}

// Choose picks the VMM for mode (ModeKVM, ModeQEMU, ModeAuto); probe is
// kvmprobe.Probe in production, a stub in tests.
func Choose(mode string, probe func() kvmprobe.Result) (Choice, error) {
	switch mode {
	case ModeKVM, "":
		return Choice{Why: "--vmm kvm"}, nil
	case ModeQEMU, ModeAuto:
	default:
		return Choice{}, fmt.Errorf("--vmm %q: want kvm, qemu or auto", mode)
	}
	p := probe()
	why := "probe: " + p.Reason
	if p.Kind != kvmprobe.None {
		why += " (" + p.Evidence() + ")"
	}
	if mode == ModeAuto && p.Hardware() {
		return Choice{Why: "--vmm auto, " + why}, nil
	}
	if _, err := Find(); err != nil {
		return Choice{}, fmt.Errorf("--vmm %s needs QEMU (%s): %v", mode, why, err)
	}
	return Choice{QEMU: true, KVM: p.Hardware(), Why: "--vmm " + mode + ", " + why}, nil
}
