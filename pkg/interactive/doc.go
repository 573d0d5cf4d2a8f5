// Package interactive owns ktstr-boot's host side of --shell and --exec:
// the kernel command-line word that asks the guest init for either mode
// (the contract itself, key names and status line, is in pkg/runconfig),
// running the VM with the terminal on the guest's hvc0 (Ctrl-A X quits,
// the terminal restored on every way out through pkg/term), and running
// one command with its output passed through and its reported status
// turned into the exit code.
//
// Imports: the standard library, pkg/runconfig, pkg/term, pkg/vmm.
package interactive
