// Package monitore2e holds ktstr-monitor's end-to-end test: real guests
// booted by plain QEMU TCG with guest RAM in a shared file, watched by the
// ktstr-monitor binary. It runs only with KTSTR_E2E=1 (test/e2e.sh sets
// it) because each boot takes tens of seconds. init/ is its guest init.
package monitore2e
