#!/usr/bin/env bash
# make demo: the README's main job. On a fresh Debian machine it installs
# what it needs, builds everything, packs an initramfs with a real sched_ext
# scheduler and the default scenario, boots a kernel and prints the decoded
# result. Boot path: ktstr-boot when /dev/kvm is hardware-assisted (probe),
# else QEMU TCG (reference mode), the fastest honest path without KVM. It
# says which and why.
#
# Environment: KTSTR_KERNEL (bzImage; default ../shared fixture, else
# /boot/vmlinuz-$(uname -r)), KTSTR_SCHEDULERS (directory with scx_simple)
# or KTSTR_DEMO_SCHEDULER (a scheduler binary), KTSTR_DEMO_TIMEOUT (240s).
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s.%N)
step() { printf 'demo [%5.1fs] %s\n' "$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo 0)" "$*"; }
command -v bc >/dev/null || step() { echo "demo: $*"; }

step "1/6 packages"
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

step "2/6 build (make all)"
make -s all
export PATH="$PWD/bin:$PATH"
lab=$(mktemp -d /tmp/ktstr-demo.XXXXXX); trap 'rm -rf "$lab"' EXIT
CGO_ENABLED=0 go build -o "$lab/ktstr-lab" ./test/lab/ktstr-lab

step "3/6 kernel"
shared=$(cd .. && pwd)/shared
if [ -n "${KTSTR_KERNEL:-}" ]; then kernel=$KTSTR_KERNEL; why="KTSTR_KERNEL"
elif [ -f "$shared/kernels/linux-6.12-ktstr/bzImage" ]; then kernel=$shared/kernels/linux-6.12-ktstr/bzImage; why="../shared fixture"
else kernel=/boot/vmlinuz-$(uname -r); why="the running kernel"; fi
[ -r "$kernel" ] || { echo "demo: kernel $kernel ($why) is not readable: set KTSTR_KERNEL to a bzImage with sched_ext" >&2; exit 1; }
echo "demo: kernel $kernel ($why)"

step "4/6 initramfs (ktstr-mkinitramfs, ktstr-init, default scenario)"
sched=${KTSTR_DEMO_SCHEDULER:-}
[ -z "$sched" ] && for d in "${KTSTR_SCHEDULERS:-}" "$shared/schedulers"; do
  [ -n "$d" ] && [ -x "$d/scx_simple" ] && { sched=$d/scx_simple; break; }; done
if [ -n "$sched" ]; then
  blob=$(ktstr-mkinitramfs --scheduler "$sched"); echo "demo: scheduler $sched"
else
  blob=$(ktstr-mkinitramfs); echo "demo: NO scheduler found (set KTSTR_SCHEDULERS or KTSTR_DEMO_SCHEDULER): EEVDF baseline run"
fi
echo "demo: initramfs $blob"

step "5/6 boot"
probe=$("$lab/ktstr-lab" kvm-probe 2>&1) && kvm=hardware || kvm=no
echo "demo: $probe"
stream=$lab/stream
if [ "$kvm" = hardware ]; then
  echo "demo: path: ktstr-boot on /dev/kvm (hardware-assisted)"
  ktstr-boot --kernel "$kernel" --initramfs "$blob" --cpus 2 --timeout "${KTSTR_DEMO_TIMEOUT:-240s}" \
    --console "$lab/console" >"$stream"
else
  echo "demo: path: QEMU TCG (no hardware KVM here, so ktstr-boot cannot boot Linux; TCG is the fastest honest path)"
  "$lab/ktstr-lab" reference --kernel "$kernel" --initramfs "$blob" --cpus 2 --memory 512 \
    --timeout "${KTSTR_DEMO_TIMEOUT:-240s}" --stream "$stream" --console "$lab/console" --quiet-console
fi
grep -a -E 'sched_ext|Run /init|Kernel panic' "$lab/console" | sed 's/^/demo: console: /' | head -5 || true

step "6/6 decoded result (ktstr-decode --summary)"
ktstr-decode --summary "$stream"
grep -q . "$stream" || { echo "demo: the guest wrote no frames" >&2; exit 1; }
step "done"
