// Package guestmem owns read-only access to a guest's RAM held in a file
// (a memfd announced by ktstr-boot, or QEMU's memory-backend-file) and the
// guest-physical layout of that file, plus the x86_64 page-table walk that
// turns a guest-virtual address into a guest-physical one.
//
// Everything read from the guest is untrusted: every guest-physical address
// and length is checked against the region layout before it touches the
// mapping, page-table entries are masked to the architectural address bits,
// and a walk never follows more than the paging mode's levels.
//
// Reads are not atomic with respect to the running guest: a value the guest
// is writing while it is read may be torn. Callers treat every value as a
// sample, never as a consistent snapshot.
//
// Imports: pkg/regfile (regular files only), golang.org/x/sys/unix and the
// standard library.
package guestmem
