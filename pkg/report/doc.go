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
// a variant "no verdict" or "error" with a reason, never a crash; variant
// names from run.json are checked to stay inside the run directory; every
// list kept from a stream is bounded.
//
// record.go reads the run directory layout; it is a stand-in for
// pkg/runrecord (owned by ktstr-gauntlet) until that package lands.
//
// Imports: pkg/wire, pkg/verdict, pkg/decode (the auto-repro timeline),
// pkg/runrecord (the repro file names), pkg/regfile and the standard
// library.
package report
