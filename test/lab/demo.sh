#!/usr/bin/env bash
# make demo: the README's main job. On a fresh Debian machine it installs
# what it needs, builds everything, then runs one ktstr-run line: it packs
# an initramfs with a real sched_ext scheduler and the default scenario,
# boots the kernel (ktstr-boot --vmm auto: its own VMM when /dev/kvm is
# hardware-assisted, else QEMU TCG, saying which and why), monitors the run
# and prints its verdict; the demo exits with ktstr-run's code.
#
# Environment: KTSTR_KERNEL (bzImage; default ../shared fixture, else
# /boot/vmlinuz-$(uname -r)), KTSTR_SCHEDULERS (directory with scx_simple)
# or KTSTR_DEMO_SCHEDULER (a scheduler binary), KTSTR_DEMO_TIMEOUT (240s).
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s.%N)
step() { printf 'demo [%5.1fs] %s\n' "$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo 0)" "$*"; }
command -v bc >/dev/null || step() { echo "demo: $*"; }

step "1/5 packages"
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "demo: missing ${need[*]}: install them (apt-get install ${need[*]}) and run again" >&2; exit 1
  fi
fi

step "2/5 build (make all)"
make -s all
export PATH="$PWD/bin:$PATH"
lab=$(mktemp -d /tmp/ktstr-demo.XXXXXX); trap 'rm -rf "$lab"' EXIT

step "3/5 kernel"
shared=$(cd .. && pwd)/shared
if [ -n "${KTSTR_KERNEL:-}" ]; then kernel=$KTSTR_KERNEL; why="KTSTR_KERNEL"
elif [ -f "$shared/kernels/linux-6.12-ktstr/bzImage" ]; then kernel=$shared/kernels/linux-6.12-ktstr/bzImage; why="../shared fixture"
else kernel=/boot/vmlinuz-$(uname -r); why="the running kernel"; fi
[ -r "$kernel" ] || { echo "demo: kernel $kernel ($why) is not readable: set KTSTR_KERNEL to a bzImage with sched_ext" >&2; exit 1; }
echo "demo: kernel $kernel ($why)"

step "4/5 scheduler"
sched=${KTSTR_DEMO_SCHEDULER:-}
[ -z "$sched" ] && for d in "${KTSTR_SCHEDULERS:-}" "$shared/schedulers"; do
  [ -n "$d" ] && [ -x "$d/scx_simple" ] && { sched=$d/scx_simple; break; }; done
run=(ktstr-run --kernel "$kernel" --timeout "${KTSTR_DEMO_TIMEOUT:-240s}" --console "$lab/console" --save "$lab/stream")
if [ -n "$sched" ]; then
  run+=(--scheduler "$sched"); echo "demo: scheduler $sched"
else
  echo "demo: NO scheduler found (set KTSTR_SCHEDULERS or KTSTR_DEMO_SCHEDULER): EEVDF baseline run"
fi

step "5/5 ktstr-run (the pipeline it runs, then its verdict)"
"${run[@]}" --dry-run | sed 's/^/demo: | /'
set +e; "${run[@]}"; rc=$?; set -e
grep -a -E 'sched_ext|Run /init|Kernel panic' "$lab/console" | sed 's/^/demo: console: /' | head -5 || true
echo "demo: the saved stream, decoded (ktstr-decode -q --summary):"
ktstr-decode -q --summary "$lab/stream" || true
[ "$rc" = 0 ] || { echo "demo: ktstr-run exited $rc (1 fail, 3 no verdict, 4 a tool failed)" >&2; exit "$rc"; }
step "done"
