// Package cpulist owns the kernel's CPU-list text format ("0-3,8,10-11", as
// in /sys/devices/system/cpu/online and the KTSTR_CPUS environment
// variable): parsing it into a sorted set of non-negative integers and
// formatting such a set back. It is used for CPU numbers, and also for LLC
// and NUMA node indices. Imports: the standard library only.
package cpulist
