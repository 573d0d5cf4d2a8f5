// Package testenv is ktstr's shared test environment: it finds the test
// fixtures and the tool binaries the way the Makefile hands them to tests,
// skips loudly when one is missing, and builds a tool once per test
// process when no built one is at hand.
//
// Fixtures come from the environment: KTSTR_KERNEL (a bzImage),
// KTSTR_VMLINUX, KTSTR_SYSTEM_MAP, KTSTR_SCHEDULERS (a directory of
// scheduler binaries) and KTSTR_BIN (the Makefile's bin/). A fixture
// variable that is unset falls back to the Makefile's default, the
// project's fixture tree ../shared beside the repository, when that tree
// exists (the Makefile applies the same rule). A fixture still missing
// skips the test with a reason that starts "SKIP (fixture missing): "; the
// reason is reported at the test's own line (every function here is a
// test helper), which is what test/unit.sh prints for each skip.
//
// Tool returns $KTSTR_BIN/<tool> when it exists and otherwise, like
// Build, runs go build for ./cmd/<tool> once per test process, into a
// directory of its own; Main (or RemoveBuilt from a package's own
// TestMain) removes what was built.
//
// It is test infrastructure: only tests import it. Imports: the standard
// library only.
package testenv
