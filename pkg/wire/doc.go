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
// scanning for the next header whose CRC checks, and are reported with their
// byte offset so that tools can say exactly what was lost.
package wire
