#!/usr/bin/env bash
# Runs the Go test suite and shows, besides go test's per-package lines,
# every skipped test with its reason: a test whose fixture or tool is
# missing skips loudly here, never silently. The full verbose log is kept
# in bin/unit.log.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
log=bin/unit.log
# -p 1: packages run one at a time. Several of them boot guests under QEMU
# TCG (pkg/guest, internal/lab, pkg/initramfs, pkg/vmm); on a 2-core machine two
# at once starve each other's guests, whose clocks run on regardless, and
# a real scheduler's watchdog then fires on a task that only lacked host CPU
# (seen: scx_flatcg "runnable task stall" under load, 0 of 4 when alone).
go test -p 1 -count=1 -timeout 25m -v "$@" ./... >"$log" 2>&1
rc=$?
# Package result lines and failures as go test prints them.
grep -E '^(ok|FAIL|panic:|---|\?)|^\s+--- FAIL' "$log" | grep -v -- '--- PASS' | grep -v -- '--- SKIP'
# Each skip with the reason line that follows it.
# go test -v prints a skip's reason (a "file_test.go:N: ..." line) before
# its "--- SKIP" line.
awk '/^[ \t]+[^ \t]+_test\.go:[0-9]+: / {why=$0; sub(/^[ \t]+/, "", why)}
     /^=== RUN/ {why=""}
     /--- SKIP:/ {line=$0; sub(/^[ \t]+/, "", line); print "SKIP " line " -- " why}' "$log"
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo "verbose log: $log"
echo "unit: $passed passed, $failed failed, $skipped skipped"
exit $rc
