// Package scenario owns the scenario file format the guest init runs:
// parsing and validating scenario JSON, the cpuset grammar (all,
// disjoint:I/N, list:0-3,5, llc:I, numa:I) and its resolution against a
// guest CPU topology, the per-check defaults and overrides, and the
// catalog of named scenarios embedded from scenarios/*.json.
//
// The format is documented in man/ktstr-scenario.5.
//
// Imports: the standard library and pkg/cpulist. pkg/guest runs scenarios;
// ktstr-mkinitramfs uses Lookup to pack one.
package scenario
