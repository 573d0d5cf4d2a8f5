#!/usr/bin/env bash
# Runnable examples of ktstr pipelines. test/e2e.sh runs this file; each
# example checks its own result and exits non-zero on failure.
set -euo pipefail
: "${KTSTR_BIN:=$(cd "$(dirname "$0")/.." && pwd)/bin}"
export PATH="$KTSTR_BIN:$PATH"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# Tools that have not landed say so with exit 2.
for t in ktstr-boot; do
  set +e; "$t" >/dev/null 2>&1; rc=$?; set -e
  [ "$rc" = 2 ] || { echo "$t: expected exit 2 (not implemented), got $rc" >&2; exit 1; }
done
# --- ktstr-monitor (owner: monitor) ---------------------------------------
# Re-judge a recorded run: the stream carries monitor samples in which CPU 1's
# runqueue clock stops with tasks queued; ktstr-monitor reports the stall and
# exits 1. With --tee it passes the stream through byte for byte.
td="$(dirname "$0")/../pkg/monitor/testdata"
set +e; KTSTR_VMLINUX= ktstr-monitor --json "$td/stall.ktstr" >"$work/stall.json" 2>"$work/stall.err"; rc=$?; set -e
[ "$rc" = 1 ] || { echo "ktstr-monitor on stall.ktstr: exit $rc, want 1" >&2; exit 1; }
grep -q '"kind":"cpu_stall","cpu":1' "$work/stall.json" || { echo "ktstr-monitor: no cpu_stall on cpu1" >&2; cat "$work/stall.json" >&2; exit 1; }
KTSTR_VMLINUX= ktstr-monitor --tee "$td/clean.ktstr" 2>/dev/null | cmp - "$td/clean.ktstr" \
  || { echo "ktstr-monitor --tee changed the stream" >&2; exit 1; }
echo "pipelines: ktstr-monitor ok"
# --- end ktstr-monitor ------------------------------------------------------
echo "pipelines: ok"
