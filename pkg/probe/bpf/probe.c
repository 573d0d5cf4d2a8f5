// SPDX-License-Identifier: GPL-2.0
/*
 * ktstr auto-repro probes: kprobes on the sched_ext core's entry points
 * into a BPF scheduler's callbacks, on its exit path, and (generic) on any
 * kernel function named in a failure's stack trace. Each hit writes one
 * struct event to its CPU's slots of the flight recorder below; the guest
 * init (pkg/probe) reads them when it stops the probes and sends them to
 * the host as probe_event frames.
 *
 * The function an event is for is the link's BPF cookie (an index into
 * the Go side's list of attached functions), so one program serves many
 * functions. Fields that a program does not fill stay zero and their bit
 * in event.fields is clear.
 *
 * Regenerate the Go bindings with pkg/probe/generate.sh (needs
 * clang and libbpf-dev; a build does not).
 */
#include "recorder.h"

char LICENSE[] SEC("license") = "GPL";

/* do_enqueue_task(rq, p, enq_flags, sticky_cpu): the path to ops.enqueue. */
SEC("kprobe/do_enqueue_task")
int BPF_KPROBE(k_do_enqueue_task, struct rq *rq, struct task_struct *p, u64 enq_flags)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	rq_fields(e, rq);
	task_fields(e, p);
	enq(e, enq_flags);
	remember(e);
	return 0;
}

/* enqueue_task_scx(rq, p, enq_flags) / dequeue_task_scx(rq, p, deq_flags). */
SEC("kprobe/enqueue_task_scx")
int BPF_KPROBE(k_rq_task_flags, struct rq *rq, struct task_struct *p, int flags)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	rq_fields(e, rq);
	task_fields(e, p);
	enq(e, (u64)(u32)flags);
	remember(e);
	return 0;
}

/* dispatch_enqueue(dsq, p, enq_flags): a task joins a DSQ. */
SEC("kprobe/dispatch_enqueue")
int BPF_KPROBE(k_dispatch_enqueue, struct scx_dispatch_q *dsq, struct task_struct *p, u64 enq_flags)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	dsq_fields(e, dsq);
	task_fields(e, p);
	enq(e, enq_flags);
	remember(e);
	return 0;
}

/* dispatch_to_local_dsq(rq, dst_dsq, p, enq_flags). */
SEC("kprobe/dispatch_to_local_dsq")
int BPF_KPROBE(k_dispatch_to_local_dsq, struct rq *rq, struct scx_dispatch_q *dsq, struct task_struct *p, u64 enq_flags)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	rq_fields(e, rq);
	dsq_fields(e, dsq);
	task_fields(e, p);
	enq(e, enq_flags);
	remember(e);
	return 0;
}

/* consume_dispatch_q(rq, dsq): ops.dispatch's consume. */
SEC("kprobe/consume_dispatch_q")
int BPF_KPROBE(k_consume_dispatch_q, struct rq *rq, struct scx_dispatch_q *dsq)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	rq_fields(e, rq);
	dsq_fields(e, dsq);
	return 0;
}

/* balance_scx(rq, prev, rf): the path to ops.dispatch. Also
 * set_next_task_scx(rq, p, first) (ops.running) and
 * put_prev_task_scx(rq, p, next) (ops.stopping). */
SEC("kprobe/balance_scx")
int BPF_KPROBE(k_rq_task, struct rq *rq, struct task_struct *p)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	rq_fields(e, rq);
	task_fields(e, p);
	remember(e);
	return 0;
}

/* select_task_rq_scx(p, prev_cpu, wake_flags): ops.select_cpu. */
SEC("kprobe/select_task_rq_scx")
int BPF_KPROBE(k_select_task_rq_scx, struct task_struct *p, int prev_cpu, int wake_flags)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	task_fields(e, p);
	e->fields |= F_ARGS;
	e->args[1] = (u64)(s64)prev_cpu;
	e->args[2] = (u64)(u32)wake_flags;
	remember(e);
	return 0;
}

/* scx_bpf_dispatch(p, dsq_id, slice, enq_flags): the scheduler's kfunc. */
SEC("kprobe/scx_bpf_dispatch")
int BPF_KPROBE(k_scx_bpf_dispatch, struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	task_fields(e, p);
	e->fields |= F_DSQ | F_ARGS;
	e->dsq_id = dsq_id;
	e->args[2] = slice;
	enq(e, enq_flags);
	remember(e);
	return 0;
}

/* scx_bpf_error_bstr(fmt, data, data__sz): the scheduler's scx_bpf_error. */
SEC("kprobe/scx_bpf_error_bstr")
int BPF_KPROBE(k_scx_bpf_error_bstr, const char *fmt, u64 *data, u32 data_sz)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	e->fields |= F_TEXT | F_ARGS;
	bpf_probe_read_kernel_str(e->text, sizeof(e->text), fmt);
	if (data && data_sz >= 8)
		bpf_probe_read_kernel(&e->args[0], 8, data);
	if (data && data_sz >= 16)
		bpf_probe_read_kernel(&e->args[1], 8, data + 1);
	if (data && data_sz >= 24)
		bpf_probe_read_kernel(&e->args[2], 8, data + 2);
	e->args[3] = data_sz;
	stack(e, ctx);
	return 0;
}

/* scx_ops_exit_kind(kind, exit_code, fmt, ...): every way a BPF scheduler
 * is made to exit (error, stall, unregistration) passes here: the trigger. */
SEC("kprobe/scx_ops_exit_kind")
int BPF_KPROBE(k_scx_ops_exit_kind, u32 kind, s64 exit_code, const char *fmt)
{
	struct event *e = begin_kind(ctx, true);
	if (!e)
		return 0;
	e->fields |= F_EXIT | F_TEXT;
	e->args[0] = kind;
	e->args[1] = (u64)exit_code;
	bpf_probe_read_kernel_str(e->text, sizeof(e->text), fmt);
	stack(e, ctx);
	return 0;
}

/* Any other function (from a failure's stack trace, or the watchdog and
 * disable work functions): its first four arguments, raw, and a stack. */
SEC("kprobe/generic")
int BPF_KPROBE(k_generic, u64 a0, u64 a1, u64 a2, u64 a3)
{
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	e->fields |= F_ARGS;
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	e->args[3] = a3;
	stack(e, ctx);
	return 0;
}
