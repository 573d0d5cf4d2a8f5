//go:build !linux

package decode

import "os"

// IsTerminal reports whether f is a character device (a terminal on the
// systems ktstr runs on; ktstr itself runs on Linux only).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && f.Name() != os.DevNull
}
