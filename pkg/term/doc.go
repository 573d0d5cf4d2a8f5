// Package term owns ktstr-boot --shell's host terminal: putting it in raw
// mode and restoring it exactly once on every way out (normal return,
// Ctrl-A X, SIGTERM/SIGINT/SIGHUP, a panic), and the Ctrl-A escape filter
// that turns "Ctrl-A x" into a quit request and "Ctrl-A Ctrl-A" into a
// literal Ctrl-A. Imports: golang.org/x/sys/unix and the standard library.
package term
