#!/usr/bin/env bash
# ktstr-mkinitramfs benchmarks, each against a named baseline in the same run.
#
#   build: cold build and warm hit of a ~50 MB input set (a dynamic binary
#          with its libraries + a ~40 MB include) vs the baseline pipeline
#          `find DIR | cpio -o -H newc | zstd -3 -T0` over the same files.
#   boot:  (BOOT=1) guest-side cost of each compression for a realistic blob
#          (scx_simple + libraries + ~32 MB include): the fixture kernel
#          under QEMU TCG with -icount shift=0,sleep=off, one boot per
#          compression; reports the kernel's "Unpacking initramfs" ->
#          "Freeing initrd memory" span and the guest time at "Run /init".
#          With -icount the guest clock counts executed instructions (1 ns
#          each), so the figures do not depend on host load and repeat to
#          0.1 ms; they are a proxy for KVM, where a core retires a few
#          instructions per ns and memory speed differs: compare ratios.
#          (Wall-clock TCG timestamps varied 10x between runs on the
#          shared 2-core machine; icount boots take ~1 min each.)
#
# Usage: bench/mkinitramfs.sh [REPS]   (BOOT=1 adds the boot part,
#        SKIP_BUILD=1 skips the build part)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-5}
tool=$PWD/bin/ktstr-mkinitramfs
[ -x "$tool" ] || { echo "bench: build first (make bin/ktstr-mkinitramfs)" >&2; exit 1; }
for t in cpio zstd find; do command -v $t >/dev/null || { echo "bench: SKIP: $t not installed" >&2; exit 0; }; done
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
goroot=$(go env GOROOT 2>/dev/null || echo /usr/local/go)
tools=$goroot/pkg/tool/linux_amd64
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# --- build ---------------------------------------------------------------
bin=${KTSTR_SCHEDULERS:-}/scx_simple
[ -f "$bin" ] || bin=$(command -v ls)
mkdir -p "$work/inc"
for f in compile vet cover; do cp "$tools/$f" "$work/inc/"; done  # ~40 MB of real binaries
init=/bin/busybox
insize=$(du -sbL "$work/inc" | cut -f1)
# The baseline packs the same files: the binary, its libraries, the include.
mkdir -p "$work/tree/usr/lib/ktstr" "$work/tree/inc"
cp "$bin" "$work/tree/usr/lib/ktstr/scheduler"; cp "$init" "$work/tree/init"; cp "$work/inc/"* "$work/tree/inc/"
for l in $(ldd "$bin" | grep -o '/[^ ]*'); do mkdir -p "$work/tree$(dirname "$l")"; cp -L "$l" "$work/tree$l"; done
total=$(du -sbL "$work/tree" | cut -f1)
echo "bench build: input $((total/1000000)) MB ($(basename "$bin") + $(ldd "$bin" | grep -c '/') libraries + $((insize/1000000)) MB include), $(nproc) CPUs"
# timed CMD...: run CMD, append "wall_ms cpu_ms" (user+sys) to $work/t
timed() {
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@"
  awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}' "$work/time" >> "$work/t"
}
col() { awk -v c="$1" '{print $c}' "$work/t"; }
report() {  # label
  printf '  %-44s wall median %5s ms (runs %s)  CPU median %5s ms\n' "$1" \
    "$(col 1 | median)" "$(col 1 | tr '\n' ' ' | sed 's/ $//')" "$(col 2 | median)"
  : > "$work/t"
}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  command -v /usr/bin/time >/dev/null || { echo "bench: SKIP: /usr/bin/time not installed" >&2; exit 0; }
  args=(--init "$init" --scheduler "$bin" --include "$work/inc:/inc")
  : > "$work/t"
  for i in $(seq "$REPS"); do  # rotated, page cache warm for all
    cat "$work/inc/"* "$bin" >/dev/null
    timed sh -c "cd '$work/tree' && find . | cpio -o -H newc --quiet | zstd -3 -T0 -q -c > '$work/pipe.zst'"
    echo pipe >> "$work/order"
    for c in zstd none; do
      KTSTR_CACHE_DIR=$work/c-$c-$i timed "$tool" --compress $c "${args[@]}" >/dev/null
      echo $c >> "$work/order"
    done
  done
  paste -d' ' "$work/order" "$work/t" > "$work/all"; : > "$work/t"
  for what in pipe zstd none; do
    grep "^$what " "$work/all" | cut -d' ' -f2- > "$work/t"
    case $what in
      pipe) report "baseline: find | cpio -o -H newc | zstd -3 -T0" ;;
      *) report "ktstr-mkinitramfs --compress $what, cold" ;;
    esac
  done
  echo "    sizes: pipeline $(( $(stat -c %s "$work/pipe.zst") / 1000 )) KB, zstd $(( $(stat -c %s "$(KTSTR_CACHE_DIR=$work/c-zstd-1 "$tool" --compress zstd "${args[@]}")") / 1000 )) KB, none $(( $(stat -c %s "$(KTSTR_CACHE_DIR=$work/c-none-1 "$tool" --compress none "${args[@]}")") / 1000 )) KB"
  # Warm hits: 20 back-to-back runs per sample (process start included).
  for i in $(seq "$REPS"); do
    KTSTR_CACHE_DIR=$work/c-zstd-1 timed sh -c "for j in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do '$tool' --compress zstd --init '$init' --scheduler '$bin' --include '$work/inc:/inc' >/dev/null; done"
  done
  awk '{printf "%.1f %.1f\n", $1/20, $2/20}' "$work/t" > "$work/t2"; mv "$work/t2" "$work/t"
  report "ktstr-mkinitramfs warm hit (per run, of 20)"
  rm -rf "$work"/c-*
fi

# --- boot ----------------------------------------------------------------
[ "${BOOT:-0}" = 1 ] || exit 0
kernel=${KTSTR_KERNEL:-}
sched=${KTSTR_SCHEDULERS:-}/scx_simple
if [ -z "$kernel" ] || [ ! -f "$sched" ] || ! command -v qemu-system-x86_64 >/dev/null; then
  echo "bench boot: SKIP: needs KTSTR_KERNEL, KTSTR_SCHEDULERS and qemu-system-x86_64" >&2; exit 0
fi
mkdir -p "$work/bi" "$work/binc"
cp pkg/initramfs/testdata/bootinit.go.txt "$work/bi/main.go"
printf 'module bootinit\n\ngo 1.21\n' > "$work/bi/go.mod"
(cd "$work/bi" && CGO_ENABLED=0 GOFLAGS= go build -ldflags='-s -w' -o init .)
cp "$tools/compile" "$tools/link" "$work/binc/"   # ~32 MB
export KTSTR_CACHE_DIR=$work/bootcache
declare -A blob
for c in zstd lz4 gzip none; do
  blob[$c]=$("$tool" --compress $c --init "$work/bi/init" --scheduler "$sched" --include "$work/binc:/opt/payload")
done
raw=$(zstd -dc "${blob[zstd]}" | wc -c)
BREPS=${BOOT_REPS:-1}
echo "bench boot: blob of $((raw/1000000)) MB uncompressed; $BREPS boot(s) per compression; fixture kernel, QEMU TCG -icount shift=0 -cpu max, 1 vCPU"
declare -A unpack up wall
for i in $(seq "$BREPS"); do
  for c in zstd lz4 gzip none; do
    t0=$(now)
    out=$(timeout 300 qemu-system-x86_64 -M microvm -accel tcg -icount shift=0,sleep=off -cpu max -m 512 -nodefaults -display none \
      -serial stdio -no-reboot -kernel "$kernel" -initrd "${blob[$c]}" \
      -append "console=ttyS0 panic=-1 tsc_early_khz=2000000 tsc=reliable no_timer_check" 2>&1) || true
    t1=$(now)
    a=$(grep -m1 'Unpacking initramfs' <<<"$out" | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    b=$(grep -m1 'Freeing initrd memory' <<<"$out" | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    u=$(grep -m1 'Run /init as init process' <<<"$out" | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    [ -n "$a" ] && [ -n "$b" ] && [ -n "$u" ] && grep -q KTSTR-BOOT-OK <<<"$out" || { echo "bench boot: $c boot $i failed; console tail:" >&2; tail -5 <<<"$out" >&2; continue; }
    unpack[$c]+="$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", (b-a)*1000}') "
    up[$c]+="$(awk -v u="$u" 'BEGIN{printf "%.1f", u*1000}') "
    wall[$c]+="$(ms $t0 $t1) "
  done
done
for c in zstd lz4 gzip none; do
  [ -n "${unpack[$c]:-}" ] || { echo "  $c: no successful boot"; continue; }
  printf '  %-5s %6s KB  unpack median %5s ms (%s)  /init at %5s ms  (host wall %5s ms)\n' $c \
    $(( $(stat -c %s "${blob[$c]}") / 1000 )) \
    "$(tr ' ' '\n' <<<"${unpack[$c]}" | grep . | median)" "${unpack[$c]% }" \
    "$(tr ' ' '\n' <<<"${up[$c]}" | grep . | median)" "$(tr ' ' '\n' <<<"${wall[$c]}" | grep . | median)"
done
