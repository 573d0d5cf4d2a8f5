package hostlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cpupin"

	"golang.org/x/sys/unix"
)

// Environment variables: the lock directory override, and what a command
// run under a reservation finds in its environment.
const (
	EnvLockDir = "KTSTR_LOCK_DIR"
	EnvCPUs    = cpupin.EnvCPUs     // reserved CPUs, kernel cpu-list format (read with cpupin.FromEnv)
	EnvLLCs    = "KTSTR_LLCS"       // reserved LLC indices, cpu-list format
	EnvNodes   = "KTSTR_NUMA_NODES" // NUMA nodes of the reserved LLCs, cpu-list format
)

// SystemDir is the lock directory every user of a host shares when it is
// writable (or can be created).
const SystemDir = "/run/ktstr/locks"

// LockError is a problem with the lock directory or a lock file (a symlink
// or other non-regular file where a lock file should be, permissions, an
// unsupported file system). ktstr-hostlock exits 125 on it.
type LockError struct{ Err error }

func (e *LockError) Error() string { return e.Err.Error() }
func (e *LockError) Unwrap() error { return e.Err }

func lockErr(format string, a ...any) error { return &LockError{fmt.Errorf(format, a...)} }

// resolveDir returns the lock directory, creating it (mode 1777) when
// missing: getenv(KTSTR_LOCK_DIR) when set, else SystemDir when it is
// writable or can be created, else $XDG_RUNTIME_DIR/ktstr.
func resolveDir(getenv func(string) string) (string, error) {
	if d := getenv(EnvLockDir); d != "" {
		return d, ensureDir(d, true)
	}
	sysErr := ensureDir(SystemDir, false)
	if sysErr == nil {
		return SystemDir, nil
	}
	if x := getenv("XDG_RUNTIME_DIR"); x != "" {
		d := filepath.Join(x, "ktstr")
		return d, ensureDir(d, false)
	}
	return "", lockErr("no usable lock directory: %v, and XDG_RUNTIME_DIR is unset; set %s to a directory every ktstr user can write", sysErr, EnvLockDir)
}

// ensureDir checks that dir is a writable directory on a local file
// system, creating it with mode 1777 (set explicitly, whatever the umask)
// and missing parents with 0755. follow says whether dir itself may be a symlink (it
// may when the user named it).
func ensureDir(dir string, follow bool) error {
	st := os.Lstat
	if follow {
		st = os.Stat
	}
	fi, err := st(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := mkdir1777(dir); err != nil {
			return lockErr("lock directory %s: %w", dir, err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return lockErr("lock directory: %w", err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return lockErr("lock directory %s is a symbolic link; refusing it (remove it or set %s)", dir, EnvLockDir)
	}
	if !fi.IsDir() {
		return lockErr("lock directory %s is not a directory", dir)
	}
	if err := checkShared(dir, fi); err != nil {
		return err
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return lockErr("lock directory %s is not writable: %w", dir, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err == nil {
		if name, bad := remoteFS[int64(sfs.Type)]; bad {
			return lockErr("lock directory %s is on %s, where flock is not reliable; point %s at a local file system (tmpfs, ext4, xfs, btrfs)", dir, name, EnvLockDir)
		}
	}
	return nil
}

// checkShared refuses a lock directory that users other than its owner
// may write (group or other write permission) without the sticky bit:
// there anyone could remove or replace another user's lock file, so a
// holder's lock could vanish under it (two "exclusive" holders), or a
// planted file that nobody else may open would lock everyone out.
func checkShared(dir string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o022 == 0 || fi.Mode()&os.ModeSticky != 0 {
		return nil
	}
	return lockErr("lock directory %s is writable by other users (mode %04o) but lacks the sticky bit, so they could remove or replace its lock files: run `chmod +t %s` (or `chmod go-w %s` for a private one), or set %s to another directory", dir, fi.Mode().Perm(), dir, dir, EnvLockDir)
}

var remoteFS = map[int64]string{
	0x6969:     "NFS",
	0xFF534D42: "CIFS",
	0xFE534D42: "SMB2",
	0x00C36400: "CephFS",
	0x6B414653: "AFS",
	0x65735546: "FUSE",
}

// mkdir1777 creates dir with mode 1777, and its missing parents with
// 0755 (less the umask): only the lock directory itself is shared.
func mkdir1777(dir string) error {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	// 0700 first: a peer that sees the directory before the chmod below
	// must not find it world-writable without the sticky bit.
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // a peer won the race
		}
		return err
	}
	// Mkdir's mode is filtered by the umask; the sticky, world-writable
	// mode is the point, so set it explicitly.
	return os.Chmod(dir, os.ModeDir|os.ModeSticky|0o777)
}

// openLockFile opens (creating, mode 0666 whatever the umask) the regular
// file name in dir for locking, with O_NOFOLLOW|O_CLOEXEC. A symlink, a
// non-regular file or a file with several hard links is refused: in a
// world-writable directory those are how another user would redirect our
// record writes. An existing file is opened without O_CREAT so that
// fs.protected_regular does not refuse files other users created.
func openLockFile(dir, name string) (*os.File, error) {
	path := dir + "/" + name
	const flags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags, 0)
	for try := 0; err == unix.ENOENT && try < 3; try++ {
		fd, err = unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, 0o666)
		if err == nil {
			if err = unix.Fchmod(fd, 0o666); err != nil {
				unix.Close(fd)
				return nil, lockErr("lock file %s: chmod 0666: %w", path, err)
			}
			break
		}
		if err == unix.EEXIST {
			fd, err = unix.Open(path, flags, 0)
		}
	}
	switch {
	case err == unix.ELOOP:
		return nil, lockErr("lock file %s is a symbolic link; refusing to use it (remove it)", path)
	case err == unix.ENXIO:
		return nil, lockErr("lock file %s is not a regular file; refusing to use it (remove it)", path)
	case err != nil:
		return nil, lockErr("lock file %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, lockErr("lock file %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, lockErr("lock file %s is not a regular file; refusing to use it (remove it)", path)
	}
	if st.Nlink != 1 {
		unix.Close(fd)
		return nil, lockErr("lock file %s has %d hard links; refusing to use it (remove it)", path, st.Nlink)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// lockName is the file name of an LLC's or a CPU's lock.
func llcFile(llc int) string { return fmt.Sprintf("llc-%d.lock", llc) }
func cpuFile(cpu int) string { return fmt.Sprintf("cpu-%d.lock", cpu) }

// queueFile is the lock every waiting requester queues on (see doc.go).
const queueFile = "queue.lock"

func isLockName(name string) bool {
	return strings.HasSuffix(name, ".lock")
}
