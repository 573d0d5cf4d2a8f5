/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the ktstr probes read, written by hand instead of a
 * generated vmlinux.h (3 MB). Every struct carries preserve_access_index:
 * the field offsets are CO-RE relocations, resolved at load time against
 * the running kernel's BTF (/sys/kernel/btf/vmlinux), so the layout below
 * only has to name the fields, not match any kernel's offsets. Field names
 * are those of Linux 6.12 (kernel/sched/sched.h, include/linux/sched/ext.h).
 */
#ifndef KTSTR_TYPES_H
#define KTSTR_TYPES_H
/* Tells bpf_tracing.h that struct pt_regs has the kernel's field names. */
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
};

enum {
	BPF_F_CURRENT_CPU = 0xffffffffULL,
};

/* x86-64 struct pt_regs: the kprobe context. */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
} __attribute__((preserve_access_index));

struct cpumask {
	unsigned long bits[1];
} __attribute__((preserve_access_index));

struct scx_dispatch_q {
	u32 nr;
	u64 id;
} __attribute__((preserve_access_index));

struct sched_ext_entity {
	struct scx_dispatch_q *dsq;
	u32 flags;
	u64 slice;
	u64 dsq_vtime;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	char comm[16];
	const struct cpumask *cpus_ptr;
	struct sched_ext_entity scx;
} __attribute__((preserve_access_index));

struct scx_rq {
	u32 nr_running;
} __attribute__((preserve_access_index));

struct rq {
	unsigned int nr_running;
	int cpu;
	struct scx_rq scx;
} __attribute__((preserve_access_index));

#endif
