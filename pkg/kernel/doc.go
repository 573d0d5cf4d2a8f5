// Package kernel owns what ktstr knows about guest kernels: reading a
// kernel's configuration (a .config file, or the IKCONFIG copy embedded in
// a bzImage or vmlinux) and its release (ImageVersion, from the bzImage
// setup header), judging it against what ktstr needs (Check),
// finding a kernel and its companions (vmlinux, System.map, config) from a
// user's spec (Resolve), building a kernel source tree with ktstr's config
// fragment (Build), and the content-addressed on-disk cache of built
// kernels (Cache: publish, list, gc, per-entry flocks).
//
// cmd/ktstr-kernel is its command-line face; ktstr-boot's --kernel and
// ktstr-monitor's vmlinux lookup call Resolve and Companions.
//
// Build runs make (os/exec) in the source tree; nothing else here runs
// a program. Imports: github.com/klauspost/compress (gzip, zstd),
// pierrec/lz4, pkg/regfile, pkg/lockfile (cache locks), pkg/cachedir, golang.org/x/sys/unix and
// the standard library. It holds
// no global mutable state (the item table and the fragment are read-only
// and handed out as copies).
package kernel
