package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/lockfile"
	"github.com/ktstr-go/ktstr/pkg/regfile"
)

// Temporary files. Every file this package writes before renaming it into
// place is named PREFIX + TempMarker + PID + "." + RANDOM and is held with
// an exclusive flock from just after it is created until after the rename.
// A builder killed mid-write (even by SIGKILL) loses its flock, so the
// next build or --gc can tell its file from one being written: a temporary
// file is stale when nobody holds its lock and either its pid is not a
// running process or it is older than staleTempAge. Holding the lock
// across the rename means a sweeper never removes a file that is about to
// be published; a builder whose file was removed in the microseconds
// between its creation and its lock (possible only when the sweeper
// cannot see the builder's pid, as from another pid namespace) notices and
// creates another.
const TempMarker = ".ktstr-tmp."

// staleTempAge is how old an unlocked temporary file of a live pid must
// be to count as debris (the pid was reused after its builder died): far
// longer than the window between creating a file and locking it.
const staleTempAge = 10 * time.Minute

// createTemp creates and locks a new temporary file in dir whose name
// starts with prefix.
func createTemp(dir, prefix string) (*os.File, error) {
	pattern := prefix + TempMarker + strconv.Itoa(os.Getpid()) + ".*"
	for try := 0; ; try++ {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		// Blocking: a sweeper may hold the lock for the moment it takes
		// to look at the file; it lets go without removing it (our pid
		// is alive), or removes it, which sameFile below notices.
		if err := lockfile.Flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if lockfile.SameFile(f, f.Name()) {
			return f, nil
		}
		f.Close() // swept before we locked it (see TempMarker)
		if try == 10 {
			return nil, fmt.Errorf("create a file in %s: it keeps being removed by another process", dir)
		}
	}
}

// commitTemp closes f (checking the error: a full disk shows here) and
// renames it to dst, keeping its lock until the rename is done. On error
// f is removed and dst is left as it was.
func commitTemp(f *os.File, dst string) error {
	lockFD, err := unix.Dup(int(f.Fd())) // shares the open file and its flock
	if err != nil {
		abortTemp(f)
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer unix.Close(lockFD)
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// abortTemp closes and removes a temporary file.
func abortTemp(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// SweepTemps removes stale temporary files (see TempMarker) in dir whose
// names start with prefix and returns how many it removed. Files being
// written are never touched.
func SweepTemps(dir, prefix string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		name := de.Name()
		i := strings.LastIndex(name, TempMarker)
		if !strings.HasPrefix(name, prefix) || i < 0 {
			continue
		}
		rest := name[i+len(TempMarker):]
		pid, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0])
		if err != nil || pid <= 0 {
			continue
		}
		if removeIfStale(filepath.Join(dir, de.Name()), pid, staleTempAge) {
			n++
		}
	}
	return n
}

// removeIfStale removes the temporary file p (written by pid, or pid 0
// when the name carries none) when nobody holds its lock and pid is not
// running or the file is older than maxAge.
func removeIfStale(p string, pid int, maxAge time.Duration) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	if lockfile.Flock(f, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false // being written
	}
	if (pid <= 0 || pidRunning(pid)) && time.Since(st.ModTime()) < maxAge {
		return false
	}
	if !lockfile.SameFile(f, p) { // renamed into place or replaced meanwhile
		return false
	}
	return os.Remove(p) == nil
}

// pidRunning says whether a process with this pid exists (it may be
// another process that reused the pid: callers also check ages).
func pidRunning(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// CheckOutputPath checks a path that a blob is to be written to (by
// rename over it): it must not exist, or be a regular file (symbolic links
// are followed; the returned path is the file to replace). A device node,
// FIFO, socket or directory is refused: replacing /dev/null by a regular
// file, or writing into a FIFO that something else reads, is never what
// -o meant.
func CheckOutputPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty output path")
	}
	real := p
	if r, err := filepath.EvalSymlinks(p); err == nil {
		real = r
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("output %s: %w", p, unwrapPathErr(err))
	}
	st, err := os.Stat(real)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, derr := os.Stat(filepath.Dir(real)); derr != nil {
			return "", fmt.Errorf("output %s: directory %s: %w", p, filepath.Dir(real), unwrapPathErr(derr))
		}
		return real, nil
	case err != nil:
		return "", fmt.Errorf("output %s: %w", p, unwrapPathErr(err))
	case !st.Mode().IsRegular():
		return "", fmt.Errorf("output %s is a %s, not a regular file: refusing to replace it (give the path of a regular file to create or replace)", p, regfile.Kind(st.Mode()))
	}
	return real, nil
}
