// Package decode owns what ktstr-decode does with a frame stream: it turns
// frames into human-readable text lines or JSON lines, filters them by
// type, reports corruption with byte offsets, counts what it saw (Stats),
// collects an end-of-run Summary of cgroup metrics and check results,
// prints the run's verdict (judged by pkg/verdict),
// runs the streaming loop that prints each frame as soon as it is complete,
// and stitches auto-repro probe events into a timeline (ReadTimeline: the
// one stitching, as data; Timeline prints it; ktstr-report shows it).
//
// It reads frames only through pkg/wire (Decoder, Unmarshal, the message
// structs) and never parses the header itself. Imports: pkg/wire,
// pkg/verdict, pkg/cpulist (the timeline's CPU lists) and the standard library.
//
// Payloads are untrusted: every known type's payload is checked against its
// layout before it is shown, by wire.CheckPayload (the definition
// ktstr-monitor shares: binary layouts exactly; JSON payloads for syntax,
// valid UTF-8, nesting, being one object and the types of known fields),
// and a payload that fails is shown as base64 with the reason, never
// dropped.
package decode
