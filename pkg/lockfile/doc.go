// Package lockfile owns the flock(2)-based lock files of ktstr's caches
// (ktstr-mkinitramfs's blob cache, ktstr-kernel's kernel cache): a lock
// file that a garbage collector may remove while holding it, so that a
// taker re-checks, after locking, that the path still names the file it
// locked. It also gives the EINTR-safe flock and the same-file check
// those callers need for their own files.
//
// ktstr-hostlock has its own queue-ordered locking (pkg/hostlock) and does
// not use this.
//
// Imports: golang.org/x/sys/unix and the standard library.
package lockfile
