// Package hosttopo owns reading the host's CPU topology from sysfs: online
// CPUs, their last-level caches (the highest-level data or unified cache
// under /sys/devices/system/cpu/cpuN/cache/index*/, usually L3), SMT core
// siblings and packages from cpuN/topology/, NUMA nodes from
// /sys/devices/system/node/nodeN/cpulist, and the CPUs the calling process
// may run on (sched_getaffinity). It describes the HOST; the topology a
// guest is booted with belongs to pkg/topology.
//
// LLCs are numbered by position: LLC 0 is the one holding the lowest CPU
// number, and so on upwards, so numbers are dense and stable for a given
// host whatever cache ids the firmware reports. An LLC's NUMA node is the
// node most of its CPUs belong to.
//
// Read takes the sysfs mount point so tests can point it at a fake tree
// (see internal/fakesys). With a root other than /sys the caller's affinity
// mask does not describe the fake CPUs, so every online CPU counts as
// allowed.
//
// Imports: pkg/cpulist, golang.org/x/sys/unix and the standard library.
package hosttopo
