#!/bin/sh
# Regenerates the committed BPF objects and Go bindings (bpf_x86_bpfel.go,
# bpf_x86_bpfel.o from bpf/probe.c; ops_x86_bpfel.go, ops_x86_bpfel.o
# from bpf/ops.c) from bpf/. Needs clang, llvm-strip and the libbpf
# headers (Debian: apt-get install clang llvm libbpf-dev); a build of
# ktstr does not: the outputs are committed.
set -eu
cd "$(dirname "$0")"
cflags="-I/usr/include/x86_64-linux-gnu -D__TARGET_ARCH_x86 -mcpu=v3 -O2 -g -Wall"
go run github.com/cilium/ebpf/cmd/bpf2go -go-package probe -target amd64 \
	-type event -no-global-types bpf bpf/probe.c -- $cflags
exec go run github.com/cilium/ebpf/cmd/bpf2go -go-package probe -target amd64 \
	-no-global-types ops bpf/ops.c -- $cflags
