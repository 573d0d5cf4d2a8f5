// Package gauntlet owns ktstr-gauntlet: the suite file (man/ktstr-suite.5:
// parsing and validating it on the host), expanding it into variants
// named sched/scenario/preset[/kernel][/repN], filtering them (--only,
// --exclude, and a time budget that picks the most diverse subset, as
// upstream ktstr's budget selection does), the plan a run directory
// holds, the per-variant wrapper that runs one ktstr-run and writes its
// record, and the engines that run the variants: GNU make (a generated
// Makefile), GNU parallel (optionally over ssh) and Slurm (an sbatch job
// array). It is not a job scheduler: the engines schedule, and each
// ktstr-run reserves its host CPUs with ktstr-hostlock: whole LLCs by
// default (ktstr-run --reserve llcs), so that variants side by side
// never share a cache; the default -j is what the host holds at once.
//
// The run directory's layout, its JSON types and the bound on how many
// variants a run holds (runrecord.MaxVariants) belong to pkg/runrecord.
//
// Each variant's ktstr-run runs with --auto-repro unless the suite or
// --no-auto-repro turns it off; the second boot's stream and its timeline
// (pkg/decode) join the variant's record.
//
// Imports: pkg/runrecord, pkg/topology (shapes and presets), pkg/pipeline
// (ktstr-run's reservation modes), pkg/hosttopo (the host's LLCs, for the
// default -j), pkg/scenario
// (catalog names and durations), pkg/kernel (the kernel's release),
// pkg/decode (the auto-repro timeline), pkg/pipeline also for where ktstr-run
// saves the auto-repro stream: ReproPath), pkg/regfile, and the standard
// library; it runs make, parallel, sbatch,
// squeue, scancel and ktstr-run as processes.
package gauntlet
