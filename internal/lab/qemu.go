package lab

import (
	"fmt"
	"os"

	"github.com/ktstr-go/ktstr/pkg/qemu"
)

// HostTSCkHz measures the host's TSC frequency in kHz (pkg/qemu owns it).
func HostTSCkHz() uint64 { return qemu.HostTSCkHz() }

// TCGTimeCmdline returns the TSC options for a kernel under QEMU TCG
// (pkg/qemu owns it).
func TCGTimeCmdline() string { return qemu.TCGTimeCmdline() }

// FindQEMU returns the qemu-system-x86_64 to use: $KTSTR_QEMU when set,
// else the one on $PATH (pkg/qemu owns it).
func FindQEMU() (string, error) { return qemu.Find() }

// Missing returns a sentence naming what the lab lacks to boot a kernel
// (QEMU, or the kernel given by $KTSTR_KERNEL), or "" when nothing is
// missing. Tests skip with this sentence.
func Missing() string {
	if _, err := FindQEMU(); err != nil {
		return err.Error()
	}
	k := os.Getenv("KTSTR_KERNEL")
	if k == "" {
		return "KTSTR_KERNEL is not set: point it at a bzImage (make exports the ../shared fixture)"
	}
	if _, err := os.Stat(k); err != nil {
		return fmt.Sprintf("KTSTR_KERNEL=%s: %v", k, err)
	}
	return ""
}
