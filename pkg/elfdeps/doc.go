// Package elfdeps finds the shared libraries and the ELF interpreter a
// dynamically linked binary needs, resolving each DT_NEEDED entry the way
// the GNU dynamic loader would on this host: DT_RPATH (only when the object
// has no DT_RUNPATH, and the executable's own DT_RPATH after it), DT_RUNPATH,
// the directories of /etc/ld.so.conf and its includes, then the default
// directories; $ORIGIN, $LIB and $PLATFORM are expanded and libraries of the
// wrong ELF class or machine are skipped, recursively over the whole
// dependency closure. It owns the /etc/ld.so.conf parser. It imports only
// the standard library (debug/elf).
package elfdeps
