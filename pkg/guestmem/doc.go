// Package guestmem owns guest RAM, the one model of it in ktstr: its
// guest-physical layout (Region, SplitLayout), the one bounds check every
// access goes through (Slice; failures wrap ErrUnmapped), and the x86_64
// page-table walk that turns a guest-virtual address into a guest-physical
// one. ktstr-boot's VMM (pkg/vmm) creates it as a memfd (NewMemfd,
// MapMemfd: memfd.go), writes the boot blobs into it (Write, LoadFrom:
// files go in by copy_file_range/sendfile, never through the heap) and
// announces /proc/PID/fd/N; host tools (pkg/monitor) map that file, or
// QEMU's memory-backend-file, read-only (Open) or writable (OpenWritable).
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
