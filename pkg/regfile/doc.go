// Package regfile owns opening files that must be regular files: a
// kernel, an initramfs, a guest-memory file, a kernel configuration. The
// open never blocks (O_NONBLOCK: a FIFO or a tty named by mistake, or by a
// forged frame, must not hang the tool), and anything that is not a
// regular file is refused with an error that names what it is ("a FIFO",
// "a character device"), so that every tool says the same thing.
//
// Imports: golang.org/x/sys/unix and the standard library.
package regfile
