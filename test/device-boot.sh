#!/usr/bin/env bash
# Boot-time figures for ktstr-boot on a machine with /dev/kvm (hardware KVM
# if it has it), no network needed. Usage:
#   test/device-boot.sh BZIMAGE INITRAMFS [RUNS] [-- extra kernel args]
# It probes /dev/kvm (KVM_CREATE_VM alone and a tiny guest), then boots
# BZIMAGE+INITRAMFS RUNS times (default 5) with bin/ktstr-boot and prints,
# per run, the wall time from process start to the guest's first stream
# byte and to the end, the exit reason and code; then min/median/max.
# The initramfs's init should write a frame and end the run (for example
# one built by ktstr-mkinitramfs). Set CPUS, MEMORY, TIMEOUT to change
# --cpus (1), --memory (512M), --timeout (120s).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 BZIMAGE INITRAMFS [RUNS] [-- kernel args]" >&2; exit 2; }
K=$1; I=$2; shift 2
RUNS=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then RUNS=$1; shift; fi
[ "${1:-}" = "--" ] && shift
BOOT=${KTSTR_BIN:-$PWD/bin}/ktstr-boot
[ -x "$BOOT" ] || { echo "$BOOT missing: run make first" >&2; exit 2; }
[ -e /dev/kvm ] || { echo "no /dev/kvm on this machine" >&2; exit 2; }
echo "== host: $(uname -r), $(nproc) CPUs, $(grep -c -E 'vmx|svm' /proc/cpuinfo) with vmx/svm flags"
echo "== probe (KVM_CREATE_VM alone; a 1M-iteration loop guest: ~ms on hardware KVM, ~1 s emulated)"
"$BOOT" --probe
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
first=(); total=()
for r in $(seq "$RUNS"); do
  "$BOOT" --kernel "$K" --initramfs "$I" --cpus "${CPUS:-1}" --memory "${MEMORY:-512M}" \
    --timeout "${TIMEOUT:-120s}" --control-fifo none --summary --console "$TMP/console.$r" \
    -- "$@" >"$TMP/stream.$r" 2>"$TMP/err.$r" || true
  line=$(grep 'summary' "$TMP/err.$r" || true)
  if [ -z "$line" ]; then echo "run $r: no summary:"; cat "$TMP/err.$r"; tail -5 "$TMP/console.$r"; continue; fi
  echo "run $r: ${line#*summary }"
  f=$(sed -n 's/.*first_frame_s=\([0-9.]*\).*/\1/p' <<<"$line"); w=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$line")
  first+=("$f"); total+=("$w")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR) printf "min %.3f s, median %.3f s, max %.3f s (%d runs)\n", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
echo "== start to first guest frame: $(stats "${first[@]}")"
echo "== start to exit:              $(stats "${total[@]}")"
