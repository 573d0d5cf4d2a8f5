// Package pipeline owns ktstr-run: composing the ktstr tools into one run
// with one verdict. It builds the commands (ktstr-mkinitramfs, then
// ktstr-hostlock -- ktstr-boot | ktstr-monitor --tee --emit [| tee FILE] |
// ktstr-decode --verdict), prints them as a shell script (--dry-run),
// runs them as separate processes connected by pipes, and combines their
// exit statuses so that no failing tool can read as a pass.
//
// It re-implements none of the tools: each runs as its own binary, found
// beside ktstr-run's own executable or on $PATH.
//
// With --auto-repro (RunAutoRepro) a run that failed because of the
// scheduler runs once more with the ktstr.probe key (pkg/repro decides
// and names the functions; pkg/probe owns the key) and its timeline is
// printed by ktstr-decode --timeline.
//
// Imports: pkg/repro, pkg/probe (the key only), pkg/kernel (to resolve
// --kernel as ktstr-boot does, and find its vmlinux), pkg/topology (the
// guest's size) and pkg/hosttopo (the host's LLCs, for --reserve llcs) to
// size the host reservation, pkg/scenario (to check on the host that
// --scenario fits --topology) and the standard library.
package pipeline
