// Package initramfs builds reproducible, compressed newc cpio archives for
// the Linux kernel's initramfs unpacker, and keeps them in a
// content-addressed on-disk cache shared safely by concurrent processes.
//
// It owns: the archive layout (what goes where: /init, the scheduler and
// its run configuration at the pkg/runconfig paths, libraries, busybox,
// includes, the /dev /proc /sys /tmp /run skeleton and the /dev/console
// node); writing the archive with github.com/cavaliergopher/cpio (plus one
// hand-written newc header for device nodes, which that package cannot
// write); compression (zstd, gzip, lz4 legacy, none); the split into a base
// part (rarely changes) and a run part (changes every run), each cached
// separately, and their concatenation; the cache (keys, per-key flock,
// stat-keyed index, atomic rename, verification, listing and garbage
// collection); and writing outputs (-o) atomically, with temporary files
// that their writer keeps flocked so that debris of killed writers can be
// told apart and swept (tmpfile.go).
//
// It imports pkg/elfdeps (library resolution), pkg/runconfig (the guest
// contract), pkg/scenario (the --scenario catalog and validation), pkg/regfile (file kinds), pkg/lockfile (cache locks), pkg/cachedir (where the cache lives), cavaliergopher/cpio, klauspost/compress, pierrec/lz4 and the
// standard library. It holds no global mutable state.
package initramfs
