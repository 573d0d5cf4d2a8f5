#!/usr/bin/env bash
# Throughput of ktstr-decode against `cat` of the same file, on the same
# machine, in one run. Generates a synthetic mixed stream (internal/streamgen:
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

# best REPS: runs "$@" (stdout to /dev/null) REPS times and prints the
# lowest wall time and the lowest CPU time (user+sys) in nanoseconds. CPU
# time is what the command itself used; on a shared machine it is the
# steadier figure, wall time includes waiting for a CPU.
best() {
  local bw="" bc="" t0 t1 w c
  for _ in $(seq "$reps"); do
    t0=$(date +%s%N)
    c=$( { TIMEFORMAT='%3U %3S'; time "$@" >/dev/null; } 2>&1 | awk '{ printf "%d", ($1+$2)*1e9 }')
    t1=$(date +%s%N)
    w=$(( t1 - t0 ))
    if [ -z "$bw" ] || [ "$w" -lt "$bw" ]; then bw=$w; fi
    if [ -z "$bc" ] || [ "$c" -lt "$bc" ]; then bc=$c; fi
  done
  echo "$bw $bc"
}
report() { # name "wall_ns cpu_ns"
  set -- "$1" $2
  awk -v n="$1" -v w="$2" -v c="$3" -v b="$bytes" 'BEGIN {
    cs = c > 0 ? sprintf("%9.1f MB/s", b/1e6/(c/1e9)) : "      (<1 ms)";
    printf "%-36s %7.3f s %9.1f MB/s   cpu %7.3f s %s\n", n, w/1e9, b/1e6/(w/1e9), c/1e9, cs }'
}
echo "stream: $bytes bytes; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "best of $reps runs; MB/s = stream bytes / time; cpu = user+sys of the command"
report "cat (baseline)" "$(best cat "$work/stream.ktstr")"
report "ktstr-decode -q (validate, count)" "$(best "$bin" -q "$work/stream.ktstr")"
report "ktstr-decode --json" "$(best "$bin" --json "$work/stream.ktstr")"
report "ktstr-decode (text)" "$(best "$bin" "$work/stream.ktstr")"
report "cat | ktstr-decode --json" "$(best sh -c "cat '$work/stream.ktstr' | '$bin' --json")"
