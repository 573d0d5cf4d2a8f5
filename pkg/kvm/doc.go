// Package kvm is a thin layer over the Linux KVM ioctl API (Documentation/
// virt/kvm/api.rst) for x86_64: the system, VM and vCPU file descriptors, the
// mmap'd kvm_run area, and Go structs whose layouts match the kernel's uapi
// (<linux/kvm.h>, <asm/kvm.h>) byte for byte; the unit tests check every
// size and field offset that matters.
//
// It owns no policy: which memory to map, how to set up registers for a
// boot, and what to do on each exit belong to pkg/vmm.
//
// Imports: golang.org/x/sys/unix and the standard library; no cgo.
package kvm
