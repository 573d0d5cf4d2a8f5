// Package runrecord owns the run directory that ktstr-gauntlet writes and
// ktstr-report reads (man/ktstr-gauntlet.1, section RUN DIRECTORY):
//
//	RUNDIR/run.json                the run: suite, engine, host, variants
//	RUNDIR/VARIANT/meta.json       one variant: what ran, where, how long, its verdict
//	RUNDIR/VARIANT/stream.ktstr    the raw frame stream (ktstr-run --save)
//	RUNDIR/VARIANT/verdict.json    ktstr-run --json's record
//	RUNDIR/VARIANT/console.txt     guest console and the tools' messages
//	RUNDIR/VARIANT/repro.ktstr     the auto-repro boot's stream (when there was one)
//	RUNDIR/VARIANT/repro-timeline.txt  its timeline (ktstr-decode --timeline)
//
// VARIANT is sched/scenario/preset[/kernel][/repN], so each variant is a
// nested directory. It owns the Run and Meta types, the variant-name
// grammar, and reading and writing the JSON files atomically (a reader
// never sees half a file: each is written to a temporary file in the same
// directory and renamed into place). For readers of a run directory that
// may be cut off, hostile or hand-made, it owns finding the variants by
// walking the tree (FindVariants: run.json may be missing or wrong), the
// bounds on what a run holds (MaxVariants, MaxRunSize, MaxMetaSize).
// Its readers open files through pkg/regfile, so a FIFO or a device in a
// run directory never blocks them.
//
// Imports: pkg/regfile and the standard library.
package runrecord
