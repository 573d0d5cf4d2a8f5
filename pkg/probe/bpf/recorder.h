/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The flight recorder shared by the kprobes (probe.c) and the fentry
 * programs on the scheduler's struct_ops callbacks (ops.c): struct event,
 * the maps, and the helpers that fill an event. Each object has its own
 * copy of the maps; the loader (pkg/probe) hands ops.c's loads the maps
 * probe.c's load created, so all events land in one recorder.
 */
#ifndef KTSTR_RECORDER_H
#define KTSTR_RECORDER_H

#include "ktstr_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>


#define STACK_DEPTH 16

/* Which optional fields an event carries (event.fields). */
enum field {
	F_TASK = 1 << 0,	/* task_pid, task_comm, cpumask, slice, task dsq */
	F_RQ = 1 << 1,		/* rq_cpu, rq_nr_running, rq_scx_nr_running */
	F_DSQ = 1 << 2,		/* dsq_id, dsq_nr */
	F_ENQ = 1 << 3,		/* enq_flags */
	F_ARGS = 1 << 4,	/* args[0..3]: the raw first four arguments */
	F_TEXT = 1 << 5,	/* text: a format string the kernel was given */
	F_STACK = 1 << 6,	/* stack[0..nstack): kernel return addresses */
	F_EXIT = 1 << 7,	/* args[0] exit kind, args[1] exit code: the trigger */
	F_TASK_DSQ = 1 << 8,	/* task_dsq_id: the DSQ the task sits on */
	F_RET = 1 << 9,		/* ret: a callback's return value (fexit) */
};

struct event {
	u64 ts;			/* bpf_ktime_get_boot_ns: the guest's CLOCK_BOOTTIME */
	u64 args[4];
	u64 dsq_id;
	u64 task_dsq_id;
	u64 enq_flags;
	u64 cpumask;		/* CPUs 0..63 of the task's cpus_ptr */
	u64 slice;
	u64 stack[STACK_DEPTH];
	u32 func;		/* the link's cookie */
	u32 fields;
	u32 cpu;
	u32 pid;
	s32 task_pid;
	s32 rq_cpu;
	u32 rq_nr_running;
	u32 rq_scx_nr_running;
	u32 dsq_nr;
	u32 nstack;
	char comm[16];
	char task_comm[16];
	char text[64];
	s64 ret;
};

/* Make bpf2go emit the Go type. */
const struct event *unused_event __attribute__((unused));

/*
 * The flight recorder: SLOTS events per CPU in "slots" (key cpu * SLOTS +
 * n % SLOTS), overwritten in turn, so the last events before the trigger
 * are there however long the run and however starved the reader: nothing
 * reads them until the init stops the probes. kprobe programs do not nest
 * on one CPU, but an fentry program on a struct_ops callback can run in an
 * interrupt that came during one: each writer takes its slot with one
 * atomic add on the CPU's head, so nested writers get different slots. The
 * loader sizes "slots" to the possible CPUs.
 */
#define SLOTS 1024
#define AFTER 256	/* events recorded after the first trigger, all CPUs */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__type(value, struct event);
} slots SEC(".maps");

/* heads: per CPU, events written (the next slot is heads % SLOTS). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} heads SEC(".maps");

/* ctl[0]: 1 once the trigger fired; ctl[1]: events still to record after it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, s64);
} ctl SEC(".maps");

/*
 * last: each task's latest event, kept however old (an LRU hash by pid),
 * so a task that stopped being scheduled long before the trigger (a
 * stall's victim) still shows where it was last seen.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, s32);
	__type(value, struct event);
} last SEC(".maps");

static __always_inline void remember(struct event *e)
{
	u32 k0 = 0;
	s64 *fired = bpf_map_lookup_elem(&ctl, &k0);
	/* After the trigger the disable path touches every task: keep what
	 * was last seen before it. */
	if (!fired || *fired)
		return;
	if (e->fields & F_TASK) {
		s32 pid = e->task_pid;
		bpf_map_update_elem(&last, &pid, e, 0);
	}
}

static __always_inline struct event *begin_kind(void *ctx, bool trigger)
{
	u32 k0 = 0, k1 = 1;
	s64 *fired = bpf_map_lookup_elem(&ctl, &k0);
	s64 *left = bpf_map_lookup_elem(&ctl, &k1);
	if (!fired || !left)
		return 0;
	if (*fired) {
		if (__sync_fetch_and_add(left, -1) <= 0)
			return 0;	/* the window after the trigger is full */
	} else if (trigger) {
		if (__sync_val_compare_and_swap(fired, 0, 1) == 0)
			*left = AFTER;
	}
	u64 *head = bpf_map_lookup_elem(&heads, &k0);
	if (!head)
		return 0;
	u32 cpu = bpf_get_smp_processor_id();
	u64 n = __sync_fetch_and_add(head, 1);
	u32 key = cpu * SLOTS + (u32)(n % SLOTS);
	struct event *e = bpf_map_lookup_elem(&slots, &key);
	if (!e)
		return 0;	/* a CPU beyond the map: the loader sized it too small */
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_boot_ns();
	e->func = (u32)bpf_get_attach_cookie(ctx);
	e->cpu = cpu;
	e->pid = (u32)bpf_get_current_pid_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

static __always_inline struct event *begin(void *ctx)
{
	return begin_kind(ctx, false);
}

static __always_inline void task_fields(struct event *e, struct task_struct *p)
{
	if (!p)
		return;
	e->fields |= F_TASK;
	e->task_pid = BPF_CORE_READ(p, pid);
	BPF_CORE_READ_STR_INTO(&e->task_comm, p, comm);
	e->cpumask = BPF_CORE_READ(p, cpus_ptr, bits[0]);
	e->slice = BPF_CORE_READ(p, scx.slice);
	struct scx_dispatch_q *dsq = BPF_CORE_READ(p, scx.dsq);
	if (dsq) {
		e->fields |= F_TASK_DSQ;
		e->task_dsq_id = BPF_CORE_READ(dsq, id);
	}
}

static __always_inline void rq_fields(struct event *e, struct rq *rq)
{
	if (!rq)
		return;
	e->fields |= F_RQ;
	e->rq_cpu = BPF_CORE_READ(rq, cpu);
	e->rq_nr_running = BPF_CORE_READ(rq, nr_running);
	e->rq_scx_nr_running = BPF_CORE_READ(rq, scx.nr_running);
}

static __always_inline void dsq_fields(struct event *e, struct scx_dispatch_q *dsq)
{
	if (!dsq)
		return;
	e->fields |= F_DSQ;
	e->dsq_id = BPF_CORE_READ(dsq, id);
	e->dsq_nr = BPF_CORE_READ(dsq, nr);
}

static __always_inline void enq(struct event *e, u64 flags)
{
	e->fields |= F_ENQ;
	e->enq_flags = flags;
}

static __always_inline void stack(struct event *e, void *ctx)
{
	long n = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	if (n > 0) {
		e->fields |= F_STACK;
		e->nstack = n / sizeof(u64);
	}
}

#endif /* KTSTR_RECORDER_H */
