// Package verdict owns the run-wide verdict: the one answer a ktstr run
// gives (pass, fail, or no verdict), computed from the frame stream alone.
//
// A Judge is fed every frame and every corruption report of a stream, in
// order, and at the end says whether the run passed, failed, or left too
// little evidence to say, with one line of reason and the identity of the
// run (kernel, scheduler, scenario, topology). The rules are in
// man/ktstr-decode.1 (VERDICT) and in Judge.Verdict; they are deliberately
// strict: a run passes only when every piece of evidence of a good run is
// present, and anything missing is a failure or "no verdict", never a pass.
//
// ktstr-decode --verdict and ktstr-monitor use it; ktstr-run reports its
// result. Imports: pkg/wire and the standard library.
package verdict
