// Package topology owns the virtual machine's CPU and NUMA shape: parsing
// the NnNlNcNt form (NUMA nodes, LLCs, cores per LLC, threads per core),
// laying out vCPUs and their APIC IDs (package = NUMA node, then LLC, core
// and thread as bit fields), splitting guest memory across nodes, and
// shaping per-vCPU CPUID so the guest derives exactly that shape (leaves
// 0x1, 0x4, 0xB, 0x1F and, on AMD, 0x80000001, 0x80000008, 0x8000001D and
// 0x8000001E).
//
// LLCs are cache domains inside a package, never a package each: a guest
// calibrates and synchronises the TSC per package, so a package per LLC
// slows boot for nothing. Packages follow NUMA nodes.
//
// It knows nothing about KVM: CPUID entries are a local struct the VMM
// converts to and from KVM's. It also names the gauntlet's 24 topology
// presets (upstream ktstr's, by the same names). Imports: the standard library and pkg/cpulist.
package topology
