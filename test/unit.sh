#!/usr/bin/env bash
# Runs the Go test suite and shows, besides go test's per-package lines,
# every skipped test with its reason: a test whose fixture or tool is
# missing skips loudly here, never silently. The full verbose log is kept
# in bin/unit.log.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
log=bin/unit.log
go test -count=1 -v "$@" ./... >"$log" 2>&1
rc=$?
# Package result lines and failures as go test prints them.
grep -E '^(ok|FAIL|panic:|---|\?)|^\s+--- FAIL' "$log" | grep -v -- '--- PASS' | grep -v -- '--- SKIP'
# Each skip with the reason line that follows it.
awk '/--- SKIP:/ {sub(/^[ \t]+/, ""); printf "SKIP %s", $0; getline; sub(/^[ \t]+/, ""); print " -- " $0}' "$log"
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo "verbose log: $log"
echo "unit: $passed passed, $failed failed, $skipped skipped"
exit $rc
