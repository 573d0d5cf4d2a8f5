package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
)

func TestCRCShiftMatchesConcatenation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 15, 16, 17, 255, 256, 4097, 1 << 16, 1<<16 + 7} {
		a := make([]byte, r.IntN(300))
		b := make([]byte, n)
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		want := crc32c(append(bytes.Clone(a), b...))
		if got := crcShift(crc32c(a), len(b)) ^ crc32c(b); got != want {
			t.Errorf("|A|=%d |B|=%d: combined %08x, direct %08x", len(a), n, got, want)
		}
	}
}

// frame builds one valid frame of type ty with a payload of n bytes.
func frame(ty Type, flags uint8, n int, fillByte byte) []byte {
	p := bytes.Repeat([]byte{fillByte}, n)
	return AppendFrame(nil, Header{Type: ty, Flags: flags, Seq: 9, TimeNS: 77}, p)
}

// forged returns a header of type log claiming a payload of length bytes
// with a CRC that will not check.
func forged(length uint32) []byte {
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Type: TypeLog}, nil)
	h[12], h[13], h[14], h[15] = byte(length), byte(length>>8), byte(length>>16), byte(length>>24)
	return h[:]
}

// decodeAll returns the offsets of the frames the decoder accepts and its
// diagnostics, reading through a reader that hands out chunk bytes a time.
func decodeAll(t testing.TB, d *Decoder) (offs []int64, errs []error) {
	for {
		f, err := d.Next()
		switch {
		case err == io.EOF:
			return
		case err == nil:
			offs = append(offs, f.Offset)
		case IsCorruption(err):
			errs = append(errs, err)
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
}

// TestNoValidFrameLostAfterForgedHeaders: the spec promises that a frame
// whose CRC checks is accepted wherever it is. Overlapping forged headers
// claiming the maximum length used to exhaust a work budget and make the
// decoder skip a large valid frame behind them.
func TestNoValidFrameLostAfterForgedHeaders(t *testing.T) {
	var stream []byte
	for range 64 {
		stream = append(stream, forged(MaxPayload)...)
	}
	at := int64(len(stream))
	good := frame(TypeOutput, 0, 1<<20, 1) // a large valid frame, 1 MiB
	stream = append(stream, good...)
	stream = append(stream, make([]byte, MaxPayload)...) // the forged frames' tails
	tail := int64(len(stream))
	stream = append(stream, frame(TypeLog, 0, 5, 'x')...)
	for _, chunk := range []int{len(stream), 4093} {
		offs, errs := decodeAll(t, NewDecoder(&chunkReader{b: stream, n: chunk}))
		if len(offs) != 2 || offs[0] != at || offs[1] != tail {
			t.Fatalf("chunk %d: frames at %v, want [%d %d]; diagnostics %v", chunk, offs, at, tail, errs)
		}
	}
}

// TestForgedHeadersCostLinearTime: overlapping forged headers that each
// claim MaxPayload cost constant CRC work each, not a re-read of their
// payload: the CRC work stays within a small multiple of the input.
func TestForgedHeadersCostLinearTime(t *testing.T) {
	work := func(n int) (int64, int) {
		var stream []byte
		for range n {
			stream = append(stream, forged(MaxPayload)...)
		}
		stream = append(stream, make([]byte, MaxPayload)...)
		stream = append(stream, frame(TypeLog, 0, 8, 's')...)
		d := NewDecoder(bytes.NewReader(stream))
		offs, _ := decodeAll(t, d)
		if len(offs) != 1 || offs[0] != int64(len(stream)-HeaderSize-8) {
			t.Fatalf("%d forged headers: frames at %v, want only the survivor", n, offs)
		}
		return d.crcTotal, len(stream)
	}
	w1, n1 := work(256)
	w2, n2 := work(8192)
	// Each byte is summed once into the running CRCs, and each candidate
	// adds under 2*cpStep+28 bytes.
	for _, c := range []struct {
		w   int64
		n   int
		hdr int
	}{{w1, n1, 256}, {w2, n2, 8192}} {
		if limit := int64(c.n) + int64(c.hdr)*(2*cpStep+28); c.w > limit {
			t.Errorf("%d forged headers: CRC work %d bytes, linear bound %d", c.hdr, c.w, limit)
		}
	}
	// 32x the forged headers must not cost anywhere near 32x the work
	// of the 16 MiB that dominates both streams.
	if float64(w2)/float64(w1) > 1.5 {
		t.Errorf("CRC work grew from %d to %d bytes for %d to %d input bytes", w1, w2, n1, n2)
	}
}

func BenchmarkForgedHeaders(b *testing.B) {
	var stream []byte
	for range 1 << 14 {
		stream = append(stream, forged(MaxPayload)...)
	}
	stream = append(stream, make([]byte, MaxPayload)...)
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		d := NewDecoder(bytes.NewReader(stream))
		for {
			if _, err := d.Next(); err == io.EOF {
				break
			}
		}
	}
}

func TestLargeFrameCRCPathAgreesWithDirect(t *testing.T) {
	// Frames over directCRCMax are checked through the running CRCs, at
	// every alignment with respect to cpStep and after compactions.
	var stream []byte
	var want []int64
	for i := range 40 {
		stream = append(stream, make([]byte, i*37%cpStep)...)
		want = append(want, int64(len(stream)))
		stream = append(stream, frame(TypeOutput, 0, directCRCMax+i*1013, byte(i))...)
	}
	bad := bytes.Clone(stream)
	bad[want[3]+HeaderSize+directCRCMax] ^= 0x40 // damage frame 3
	for _, chunk := range []int{len(stream), 1000, 97} {
		offs, _ := decodeAll(t, NewDecoder(&chunkReader{b: stream, n: chunk}))
		if len(offs) != len(want) {
			t.Fatalf("chunk %d: %d frames, want %d", chunk, len(offs), len(want))
		}
		offs, _ = decodeAll(t, NewDecoder(&chunkReader{b: bad, n: chunk}))
		if len(offs) != len(want)-1 || offs[2] != want[2] || offs[3] != want[4] {
			t.Fatalf("chunk %d, frame 3 damaged: %d frames, want all but frame 3", chunk, len(offs))
		}
	}
}

// TestEndOfStreamRules pins man/ktstr-stream.5's READING AND
// RESYNCHRONIZING rules for the end of the stream.
func TestEndOfStreamRules(t *testing.T) {
	good := frame(TypeLog, 0, 10, 'g')
	hdrOnly := good[:HeaderSize+4] // a frame cut off in its payload
	badVersion := bytes.Clone(good[:10])
	badVersion[4] = 2
	bigLen := forged(MaxPayload + 1)[:16]
	type diag struct {
		kind      string // "corrupt" or "truncated"
		off, n, w int64
	}
	tests := []struct {
		name   string
		stream []byte
		want   []diag
	}{
		{"magic prefix", []byte("KTS"), []diag{{"truncated", 0, 3, 32}}},
		{"partial header, right version", good[:20], []diag{{"truncated", 0, 20, 32}}},
		{"partial header, wrong version", badVersion, []diag{{"corrupt", 0, 10, 0}}},
		{"partial header, length over the cap", bigLen, []diag{{"corrupt", 0, 16, 0}}},
		{"cut in the payload", hdrOnly, []diag{{"truncated", 0, 36, 42}}},
		{"garbage then a cut-off frame", append([]byte("junk!"), hdrOnly...), []diag{{"corrupt", 0, 5, 0}, {"truncated", 5, 36, 42}}},
		{"garbage then a magic prefix", []byte("junkKT"), []diag{{"corrupt", 0, 4, 0}, {"truncated", 4, 2, 32}}},
		{"cut-off frame hiding a good one", append(forged(100), good...), []diag{{"corrupt", 0, 32, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{len(tc.stream) + 1, 1} {
				_, errs := decodeAll(t, NewDecoder(&chunkReader{b: tc.stream, n: chunk}))
				if len(errs) != len(tc.want) {
					t.Fatalf("chunk %d: diagnostics %v, want %v", chunk, errs, tc.want)
				}
				for i, w := range tc.want {
					var ce *CorruptError
					var te *TruncatedError
					switch {
					case w.kind == "corrupt" && errors.As(errs[i], &ce):
						if ce.Offset != w.off || ce.Skipped != w.n {
							t.Errorf("chunk %d: %v, want corrupt at %d of %d bytes", chunk, errs[i], w.off, w.n)
						}
					case w.kind == "truncated" && errors.As(errs[i], &te):
						if te.Offset != w.off || te.Have != w.n || te.Want != w.w {
							t.Errorf("chunk %d: %v, want truncated at %d, %d of %d bytes", chunk, errs[i], w.off, w.n, w.w)
						}
					default:
						t.Errorf("chunk %d: diagnostic %d is %v, want %s", chunk, i, errs[i], w.kind)
					}
				}
			}
		})
	}
}

// TestPushDecoderMatchesPull: fed in any chunks, a push decoder returns
// the same frames and diagnostics as a pull decoder.
func TestPushDecoderMatchesPull(t *testing.T) {
	var s []byte
	s = append(s, "lead junk"...)
	s = append(s, frame(TypePhase, 0, 3, '{')...)
	s = append(s, forged(5000)...)
	s = append(s, frame(TypeOutput, 0, 6000, 'o')...)
	s = append(s, frame(TypeVMStart, FlagHost, 20, ' ')...)
	s = append(s, frame(TypeLog, 0, 4, 'l')[:20]...)
	pullOffs, pullErrs := decodeAll(t, NewDecoder(bytes.NewReader(s)))
	for _, chunk := range []int{1, 7, 4096, len(s)} {
		d := NewPushDecoder()
		var offs []int64
		var errs []error
		rest := s
		for {
			f, err := d.Next()
			if err == ErrNeedInput {
				if len(rest) == 0 {
					d.CloseInput()
					continue
				}
				n := min(chunk, len(rest))
				d.Feed(rest[:n])
				rest = rest[n:]
				continue
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !bytes.Equal(f.Raw, s[f.Offset:f.Offset+int64(len(f.Raw))]) {
				t.Fatalf("chunk %d: Raw of frame at %d differs from the input", chunk, f.Offset)
			}
			offs = append(offs, f.Offset)
		}
		if len(offs) != len(pullOffs) || len(errs) != len(pullErrs) {
			t.Fatalf("chunk %d: push %v %v, pull %v %v", chunk, offs, errs, pullOffs, pullErrs)
		}
		for i := range errs {
			if errs[i].Error() != pullErrs[i].Error() {
				t.Errorf("chunk %d: %v vs %v", chunk, errs[i], pullErrs[i])
			}
		}
	}
}

func TestGuestOnlyRefusesHostFrames(t *testing.T) {
	var s []byte
	s = append(s, frame(TypeVMStart, FlagHost, 8, ' ')...) // host type, host flag
	s = append(s, frame(TypeMonitorSample, 0, 8, ' ')...)  // host type, no flag
	s = append(s, frame(TypeLog, FlagHost, 8, 'x')...)     // guest type, host flag
	inner := len(s) + HeaderSize
	s = append(s, frame(0x0150, 0, HeaderSize+8, 0)...) // reserved host type ...
	copy(s[inner:], frame(TypeLog, 0, 8, 'i'))          // ... hiding a guest frame
	last := len(s)
	s = append(s, frame(TypeLog, 0, 8, 'y')...)
	offs, errs := decodeAll(t, NewDecoder(bytes.NewReader(s), GuestOnly()))
	if len(offs) != 2 || offs[0] != int64(inner) || offs[1] != int64(last) {
		t.Fatalf("frames at %v, want [%d %d]; %v", offs, inner, last, errs)
	}
	if offs, _ := decodeAll(t, NewDecoder(bytes.NewReader(s))); len(offs) != 5 {
		t.Fatalf("without GuestOnly: frames at %v, want 5", offs)
	}
}

var _ = crc32.Castagnoli

// TestAcceptanceIgnoresReservedAndFlags: reserved header bytes, reserved
// flag bits and a flag that disagrees with the type range do not stop a
// frame whose CRC checks from being accepted.
func TestAcceptanceIgnoresReservedAndFlags(t *testing.T) {
	var s []byte
	for _, mod := range []func(h []byte){
		func(h []byte) { h[24], h[27] = 0xAA, 0x55 }, // reserved bytes
		func(h []byte) { h[5] = 0xFE },               // reserved flag bits, no host flag
		func(h []byte) { h[5] = FlagHost },           // guest type with the host flag
		func(h []byte) { h[6], h[7] = 0x00, 0x01 },   // host type without the flag
		func(h []byte) { h[6], h[7] = 0x00, 0x00 },   // type 0 (reserved)
	} {
		f := frame(TypeLog, 0, 3, 'r')
		mod(f)
		binary.LittleEndian.PutUint32(f[28:], FrameCRC(f, f[HeaderSize:]))
		s = append(s, f...)
	}
	offs, errs := decodeAll(t, NewDecoder(bytes.NewReader(s)))
	if len(offs) != 5 || len(errs) != 0 {
		t.Fatalf("frames at %v, diagnostics %v; want 5 frames", offs, errs)
	}
}

func TestCutShortReason(t *testing.T) {
	s := append(forged(100), frame(TypeLog, 0, 10, 'g')...)
	_, errs := decodeAll(t, NewDecoder(bytes.NewReader(s)))
	want := "corrupt stream at byte 0: frame of 132 bytes cut short by end of stream (74 bytes present); skipped 32 bytes"
	if len(errs) != 1 || errs[0].Error() != want {
		t.Fatalf("diagnostics %v, want %q", errs, want)
	}
}
