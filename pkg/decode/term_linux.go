package decode

import (
	"os"
	"syscall"
	"unsafe"
)

// IsTerminal reports whether f is a terminal (TCGETS succeeds), unlike a
// character-device test, which /dev/null also passes.
func IsTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
