package qemu

import (
	"fmt"
	"os"
	"os/exec"
)

// Find returns the qemu-system-x86_64 to use: $KTSTR_QEMU when set, else
// the one on $PATH. The error says how to get one.
func Find() (string, error) {
	if q := os.Getenv("KTSTR_QEMU"); q != "" {
		if _, err := os.Stat(q); err != nil {
			return "", fmt.Errorf("KTSTR_QEMU=%s: %w", q, err)
		}
		return q, nil
	}
	q, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", fmt.Errorf("qemu-system-x86_64 not found: install it (apt-get install qemu-system-x86) or set KTSTR_QEMU")
	}
	return q, nil
}
