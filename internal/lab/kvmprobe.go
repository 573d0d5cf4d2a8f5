package lab

import "github.com/ktstr-go/ktstr/pkg/kvmprobe"

// KVMKind is the probe's classification of /dev/kvm (pkg/kvmprobe owns it).
type KVMKind = kvmprobe.Kind

const (
	// KVMNone: no usable /dev/kvm.
	KVMNone = kvmprobe.None
	// KVMEmulated: /dev/kvm answers but runs guest code in software;
	// Linux does not boot on it.
	KVMEmulated = kvmprobe.Emulated
	// KVMHardware: guest code runs at hardware-assisted speed (bare-metal
	// KVM, or KVM inside a VM with nested virtualization such as the
	// nested lab's L1). ktstr-boot can boot Linux on it.
	KVMHardware = kvmprobe.Hardware
)

// KVMProbe is the probe's decision and the evidence for it.
type KVMProbe struct {
	Kind KVMKind
	// Rate is the measured guest loop speed in iterations per second.
	Rate float64
	// Hypervisor is true when this machine is itself a VM.
	Hypervisor bool
	// Reason says why, in one line, with the evidence.
	Reason string
	// Result is the product probe's full evidence (host rate, ratio,
	// threshold).
	Result kvmprobe.Result
}

// ProbeKVM decides whether /dev/kvm (or dev, when not empty) runs guests
// at hardware-assisted speed: pkg/kvmprobe's guest/host loop-speed ratio,
// the same decision ktstr-boot --probe and --vmm auto make.
func ProbeKVM(dev string) KVMProbe {
	r := kvmprobe.Probe(kvmprobe.Options{Device: dev})
	reason := r.Reason
	if r.Kind != kvmprobe.None {
		reason += " (" + r.Evidence() + ")"
	}
	return KVMProbe{Kind: r.Kind, Rate: r.GuestRate, Hypervisor: r.Hypervisor, Reason: reason, Result: r}
}
