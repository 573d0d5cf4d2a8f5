// Package wire owns the ktstr stream format: the fixed 32-byte frame header,
// the CRC32C that guards each frame, the catalogue of message types and their
// payload layouts, and the Encoder and Decoder that write and read framed
// streams over io.Writer and io.Reader.
//
// The byte-level specification lives in man/ktstr-stream.5; this package is
// its reference implementation. Everything that produces or consumes frames
// (the guest init, ktstr-boot, ktstr-monitor, ktstr-decode) goes through this
// package and never re-implements the header.
//
// Imports: the standard library only. Every other ktstr package may import
// wire; wire imports no ktstr package.
//
// Decoding treats its input as untrusted: a length field above MaxPayload is
// a corruption report, never an allocation; corrupted regions are skipped by
// trying every later offset in order until a frame's CRC checks (no valid
// frame is ever lost, in time linear in the input), and are reported with
// their byte offset so that tools can say exactly what was lost. The
// Decoder reads from an io.Reader or is fed bytes (NewPushDecoder).
//
// It also owns the one definition of a bad payload (CheckPayload, used by
// ktstr-decode and ktstr-monitor alike) and GuestRelay, which passes a
// guest's stream on for a host that adds its own frames without letting the
// guest forge them (ktstr-boot, the lab).
package wire
