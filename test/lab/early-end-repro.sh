#!/usr/bin/env bash
# Opt-in reproduction loop for issue 20 (a guest that ends early with no
# guest_exit): boots one ktstr-init + scheduler blob N times under plain
# QEMU TCG (2 vCPUs, default scenario, like test/lab/e2e-lab.sh's reference
# boot) and classifies how each run ended. Bad runs keep their evidence
# (internal/lab/evidence.go: $KTSTR_EVIDENCE_DIR, default /var/tmp/ktstr-evidence).
#
#   N=200 CHUNK=20 [ACCEL=tcg] [LOAD=2] [SCHED=scx_qmap] [SCHED_ARGS="-T 3"] [CMDLINE=...] \
#     bash test/lab/early-end-repro.sh
#
# Each chunk of CHUNK boots runs under `flock /tmp/ktstr-qemu.lock` so that
# other QEMU jobs on the machine interleave. ACCEL defaults to the lab's
# default (single-threaded TCG); ACCEL=tcg is multi-threaded TCG, the
# setting that produced the early ends. LOAD=K runs K busy loops beside
# QEMU for the whole series. Prints one line per boot and a summary:
#   ok          guest_exit code 0
#   exit=N      guest_exit with code N (the init's own verdict)
#   no-exit     frames but no guest_exit; the first console fault shown
#   timeout     the hard timeout killed QEMU
#   no-frames   nothing on the stream (the kernel died before the init)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
: "${KTSTR_KERNEL:=$root/../shared/kernels/linux-6.12-ktstr/bzImage}"
: "${KTSTR_SCHEDULERS:=$root/../shared/schedulers}"
export KTSTR_KERNEL
n=${N:-20} chunk=${CHUNK:-20} sched=${SCHED:-scx_simple}
work=$(mktemp -d /tmp/ktstr-repro.XXXXXX); trap 'rm -rf "$work"; [ -n "${loadpids:-}" ] && kill $loadpids 2>/dev/null' EXIT
make -s all >/dev/null
CGO_ENABLED=0 go build -o "$work/ktstr-lab" ./test/lab/ktstr-lab
# shellcheck disable=SC2086
blob=$(bin/ktstr-mkinitramfs --scheduler "$KTSTR_SCHEDULERS/$sched" ${SCHED_ARGS:+-- $SCHED_ARGS})
echo "repro: blob $blob, $n boots, accel ${ACCEL:-lab default}, load ${LOAD:-0}, sched $sched ${SCHED_ARGS:-}"
loadpids=
for _ in $(seq "${LOAD:-0}"); do (while :; do :; done) & loadpids="$loadpids $!"; done
declare -A count
boot() { # boot I: one run, one line
  local i=$1 d=$work/run
  rm -rf "$d"; mkdir -p "$d"
  "$work/ktstr-lab" reference --name "repro-$sched-$i" ${ACCEL:+--accel "$ACCEL"} --initramfs "$blob" --cpus 2 --memory 512 \
    --timeout 120s --hang-warn 0 --stream "$d/stream" --console "$d/console" --quiet-console ${CMDLINE:+--cmdline "$CMDLINE"} 2>"$d/err"
  local rc=$? class
  bin/ktstr-decode --json "$d/stream" >"$d/jsonl" 2>/dev/null
  if grep -q '"type":"guest_exit"' "$d/jsonl"; then
    class=exit=$(grep '"type":"guest_exit"' "$d/jsonl" | grep -o '"code":-\?[0-9]*' | cut -d: -f2)
    [ "$class" = exit=0 ] && class=ok
  elif [ "$rc" = 3 ]; then class=timeout
  elif [ ! -s "$d/stream" ]; then class=no-frames
  else class=no-exit
  fi
  count[$class]=$(( ${count[$class]:-0} + 1 ))
  local fault; fault=$(grep -m1 -E 'Oops:|BUG:|Kernel panic|ktstr-init: FATAL|general protection' "$d/console" | tr -d '\r' | cut -c1-100)
  printf 'repro: %3d %-9s %5d stream bytes, %s %s\n' "$i" "$class" "$(stat -c %s "$d/stream" 2>/dev/null || echo 0)" \
    "$(grep -o 'wall [0-9.]*s' "$d/err" | tail -1)" "$fault"
  if [ "$class" != ok ] && ! grep -q 'evidence kept in' "$d/err"; then
    # An init verdict other than 0 is not a lab failure; keep it anyway.
    "$work/ktstr-lab" keep-evidence --name "repro-$sched-$i" --why "repro: $class" --file console.txt="$d/console" \
      --file stream.ktstr="$d/stream" --file qemu-stderr.txt="$d/err" 2>&1 | head -1
  elif [ "$class" != ok ]; then grep -m1 -o 'evidence kept in [^;]*' "$d/err"
  fi
}
i=0
while [ $i -lt "$n" ]; do
  exec 9>/tmp/ktstr-qemu.lock; flock 9
  for _ in $(seq "$chunk"); do [ $i -lt "$n" ] || break; i=$((i + 1)); boot $i; done
  flock -u 9; exec 9>&-
  [ $i -lt "$n" ] && sleep 15 # let other QEMU jobs in
done
summary=""; for k in "${!count[@]}"; do summary="$summary $k=${count[$k]}"; done
echo "repro: $n boots:$summary"
[ "${count[ok]:-0}" = "$n" ]
