// SPDX-License-Identifier: GPL-2.0
/*
 * ktstr auto-repro: an fentry program on each of the scheduler's
 * struct_ops callbacks (its BPF programs qmap_enqueue, qmap_dispatch, ...),
 * recording into the same flight recorder as probe.c's kprobes.
 *
 * A tracing program is verified against one target, so pkg/probe loads
 * f_ops once per callback (AttachTarget: the struct_ops program,
 * AttachTo: its BTF function name) with probe.c's maps, and attaches it
 * with a BPF cookie: the low 32 bits index the Go side's list of probed
 * functions (event.func, as for the kprobes), bit 32 (OPS_TASK) says the
 * callback's first argument is a struct task_struct *.
 *
 * A struct_ops program built with BPF_STRUCT_OPS / BPF_PROG is
 * `int name(unsigned long long *ctx)`: its one argument points at the
 * callback's arguments as the struct_ops trampoline stored them. f_ops
 * copies the first four (args[0..3]; those past the callback's own are
 * whatever the trampoline's stack held) and, with OPS_TASK, reads the
 * task's fields from args[0].
 *
 * x_ops (fexit) is loaded and attached the same way to the callbacks
 * whose return value says what the scheduler decided (select_cpu: the
 * CPU; init_task, init: an error): the event has ret and the arguments.
 */
#include "recorder.h"

char LICENSE[] SEC("license") = "GPL";

#define OPS_TASK (1ULL << 32)

static __always_inline struct event *ops_event(u64 *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	struct event *e = begin(ctx);
	if (!e)
		return 0;
	u64 args = ctx[0];
	if (bpf_probe_read_kernel(e->args, sizeof(e->args), (void *)args) == 0)
		e->fields |= F_ARGS;
	if ((cookie & OPS_TASK) && (e->fields & F_ARGS))
		task_fields(e, (struct task_struct *)e->args[0]);
	return e;
}

SEC("fentry/ops")
int f_ops(u64 *ctx)
{
	struct event *e = ops_event(ctx);
	if (e)
		remember(e);
	return 0;
}

SEC("fexit/ops")
int x_ops(u64 *ctx)
{
	struct event *e = ops_event(ctx);
	if (!e)
		return 0;
	/* Not ctx[1]: the verifier may have modelled the target
	 * conservatively (five u64 arguments: it did for scx_qmap's
	 * programs on 6.12, and ctx[1] read whatever was in rsi); the
	 * helper reads the slot the trampoline really used. */
	u64 ret = 0;
	if (bpf_get_func_ret(ctx, &ret) == 0) {
		e->fields |= F_RET;
		e->ret = (s64)(s32)ret;	/* the callbacks fexit is for return s32 */
	}
	remember(e);
	return 0;
}
