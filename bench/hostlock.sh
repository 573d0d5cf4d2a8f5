#!/usr/bin/env bash
# Cost of a reservation: `ktstr-hostlock -- true` (read the topology, queue,
# take one LLC exclusively, record the holder, exec true, wait, release)
# against util-linux `flock FILE true`, in one run on the same machine.
#
#   bench/hostlock.sh [RUNS]      (default 1000)
#
# 1. The Go benchmark BenchmarkVsFlock alternates the two commands in one
#    loop (both see the same load) and prints median wall and CPU times and
#    their ratios.
# 2. When hyperfine is installed, it times both as well (-N, warm-up 50);
#    its "Summary" line is the mean ratio.
# Lock files go to a temporary directory on /dev/shm (tmpfs, like the
# default /run/ktstr/locks). Uses $KTSTR_BIN/ktstr-hostlock when present,
# else builds one with the Makefile's flags.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000}
command -v flock >/dev/null || { echo "bench/hostlock.sh: SKIP: util-linux flock(1) not installed (the baseline)" >&2; exit 1; }
: "${KTSTR_BIN:=$PWD/bin}"
if [ ! -x "$KTSTR_BIN/ktstr-hostlock" ]; then make -s bin/ktstr-hostlock; KTSTR_BIN=$PWD/bin; fi
export KTSTR_BIN
echo "== go test -bench VsFlock (${runs} alternating pairs)"
go test -run '^$' -bench 'VsFlock' -benchtime "${runs}x" ./cmd/ktstr-hostlock | grep -E 'Benchmark|ok'
if command -v hyperfine >/dev/null; then
  dir=$(mktemp -d /dev/shm/hostlock-bench.XXXXXX); trap 'rm -rf "$dir"' EXIT
  echo "== hyperfine (${runs} runs each)"
  KTSTR_LOCK_DIR=$dir hyperfine -N --warmup 50 --runs "$runs" \
    "flock $dir/flock.lock true" "$KTSTR_BIN/ktstr-hostlock -- true"
else
  echo "== hyperfine not installed: skipped (apt install hyperfine)"
fi
