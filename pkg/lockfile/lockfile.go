package lockfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock takes a blocking flock of kind how (unix.LOCK_EX or LOCK_SH) on
// the lock file at path, creating it, and returns its release. The file
// may be removed by a collector that holds it exclusively; after locking,
// Lock checks that path still names the locked file and starts over if
// not.
func Lock(path string, how int) (release func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open cache lock: %w", err)
		}
		if err := Flock(f, how); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if SameFile(f, path) {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

// TryLock is Lock of an exclusive lock without waiting; ok is false when
// another holds it (or the file cannot be opened, or was replaced).
func TryLock(path string) (release func(), ok bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, false
	}
	if Flock(f, unix.LOCK_EX|unix.LOCK_NB) != nil || !SameFile(f, path) {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// Flock is flock(2) on f, retried when a signal interrupts it.
func Flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// SameFile reports whether the open file f is still the file at path p.
func SameFile(f *os.File, p string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(p)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}
