// Package report owns what ktstr-report does with a run directory (the
// tree ktstr-gauntlet writes: run.json, then one directory per variant
// with meta.json, stream.ktstr, verdict.json and console.txt): it loads
// every variant, re-judges each stream with pkg/verdict (a variant is
// never shown as a pass that the judge would not call one, and a
// disagreement with meta.json is flagged), extracts the metrics a reader
// compares (wall time, throughput, fairness spread, gaps, wake latency,
// migrations, runqueue depth, the BPF verifier's work from bpf_prog_stats:
// bpfstats.go), shows a failed variant's auto-repro timeline (repro.ktstr,
// stitched by pkg/decode.ReadTimeline: repro.go), and renders the run as a
// text grid, JSON, JUnit XML or one self-contained HTML page with inline
// SVG plots. It also
// compares two run directories metric by metric (Compare) with absolute
// and relative gates that must both be crossed.
//
// A run directory is untrusted input: missing, empty or corrupt files make
// a variant "no verdict" or "error" with a reason, never a crash; every
// list kept from a stream is bounded.
//
// The run directory's format is not the report's: its file names, run.json
// and meta.json, the variant-name grammar, finding variants when run.json
// is missing or wrong and the size bounds belong to pkg/runrecord, which
// ktstr-gauntlet writes with; opening only regular files (a FIFO must not
// block) belongs to pkg/regfile.
//
// Imports: pkg/wire, pkg/verdict, pkg/decode (the auto-repro timeline),
// pkg/runrecord (the repro file names), pkg/regfile and the standard
// library.
package report
