#!/usr/bin/env bash
# End-to-end suite: runs every pipeline in examples/pipelines.sh and checks
# its output. Each lab-dependent section skips loudly when its fixture or
# tool is missing; it never passes silently.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
echo "e2e: examples/pipelines.sh"
bash examples/pipelines.sh
# --- lab ---
# Reference boots (QEMU TCG), the KVM probe, ktstr-boot on real or nested KVM
# and the QEMU -enable-kvm baseline: test/lab/e2e-lab.sh.
echo "e2e: lab"
bash test/lab/e2e-lab.sh
# --- end lab ---
echo "e2e: ok"
