// Package kernelsym owns what ktstr learns about a guest kernel from its
// build artefacts alone: symbol addresses (the vmlinux ELF symbol table or
// a System.map), the bytes of linux_banner (used to find the kernel in
// guest RAM), the kernel configuration embedded by CONFIG_IKCONFIG (HZ,
// physical alignment), and struct-member offsets from the kernel's BTF
// through github.com/cilium/ebpf/btf.
//
// It knows nothing about a running guest; pkg/monitor combines it with
// pkg/guestmem. Addresses here are link-time addresses.
//
// Imports: the standard library and github.com/cilium/ebpf/btf.
package kernelsym
