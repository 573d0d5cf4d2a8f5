#!/usr/bin/env bash
# Throughput of ktstr-decode against `cat` of the same file, on the same
# machine, in one run. Generates a synthetic mixed stream (pkg/streamgen:
# scheduler and payload output, worker/cgroup metrics, monitor samples) of
# SIZE MiB (default 200) in a temporary directory, warms the page cache,
# then times each command REPS times (default 3) and prints the best MB/s.
#
#   bench/decode.sh [SIZE_MIB] [REPS]
#
# Uses $KTSTR_BIN/ktstr-decode when it exists, else builds one.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-200}
reps=${2:-3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
bin=${KTSTR_BIN:-$PWD/bin}/ktstr-decode
if [ ! -x "$bin" ]; then
  bin=$work/ktstr-decode
  CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/ktstr-decode
fi
go run ./bench/genstream -size "$size" -o "$work/stream.ktstr"
bytes=$(stat -c %s "$work/stream.ktstr")
cat "$work/stream.ktstr" >/dev/null # page cache

best() { # best wall seconds of REPS runs of "$@" with stdout to /dev/null
  local b="" t0 t1 s
  for _ in $(seq "$reps"); do
    t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
    s=$(( t1 - t0 ))
    if [ -z "$b" ] || [ "$s" -lt "$b" ]; then b=$s; fi
  done
  echo "$b"
}
report() { # name ns
  awk -v n="$1" -v ns="$2" -v b="$bytes" 'BEGIN { printf "%-34s %8.3f s %9.1f MB/s\n", n, ns/1e9, b/1e6/(ns/1e9) }'
}
echo "stream: $bytes bytes ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
report "cat (baseline)" "$(best cat "$work/stream.ktstr")"
report "ktstr-decode -q (validate+count)" "$(best "$bin" -q "$work/stream.ktstr")"
report "ktstr-decode --json" "$(best "$bin" --json "$work/stream.ktstr")"
report "ktstr-decode (text)" "$(best "$bin" "$work/stream.ktstr")"
report "cat | ktstr-decode --json (pipe)" "$(best sh -c "cat '$work/stream.ktstr' | '$bin' --json")"
