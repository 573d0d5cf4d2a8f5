#!/usr/bin/env bash
# End-to-end suite: runs every pipeline in examples/pipelines.sh and checks
# its output. Each lab-dependent section skips loudly when its fixture or
# tool is missing; it never passes silently.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
echo "e2e: examples/pipelines.sh"
bash examples/pipelines.sh
echo "e2e: ok"
