package wire

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

// account decodes stream with a reader that hands out at most chunk bytes
// per Read, and checks the decoder's invariants: every byte of the input is
// accounted for exactly once (as a frame, a skipped region or a truncated
// tail), in order; every frame it returns carries a CRC that checks; the
// buffer never grows past twice the input or the format's cap. It returns
// the frames' payloads.
func account(t testing.TB, stream []byte, chunk int) (payloads [][]byte, errs []error) {
	d := NewDecoder(&chunkReader{b: stream, n: chunk})
	var next int64
	limit := max(defaultBuf, 2*len(stream))
	for i := 0; ; i++ {
		if i > len(stream)+1 {
			t.Fatalf("decoder made no progress after %d results", i)
		}
		f, err := d.Next()
		if cap(d.buf) > limit || cap(d.buf) > d.maxBuf() {
			t.Fatalf("decoder buffer grew to %d for a %d-byte stream", cap(d.buf), len(stream))
		}
		if err == io.EOF {
			break
		}
		var ce *CorruptError
		var te *TruncatedError
		switch {
		case err == nil:
			if f.Offset != next {
				t.Fatalf("frame at %d, expected next byte %d", f.Offset, next)
			}
			raw := stream[f.Offset : f.Offset+HeaderSize+int64(f.Length)]
			if !bytes.Equal(raw[HeaderSize:], f.Payload) {
				t.Fatalf("frame at %d: payload does not alias the input bytes", f.Offset)
			}
			if FrameCRC(raw, raw[HeaderSize:]) != f.CRC {
				t.Fatalf("frame at %d returned with a bad CRC", f.Offset)
			}
			next += HeaderSize + int64(f.Length)
			payloads = append(payloads, bytes.Clone(f.Payload))
		case errors.As(err, &ce):
			if ce.Offset != next || ce.Skipped <= 0 {
				t.Fatalf("corrupt region %+v, expected it to start at %d", ce, next)
			}
			next += ce.Skipped
			errs = append(errs, err)
		case errors.As(err, &te):
			if te.Offset != next || te.Have <= 0 || te.Have >= te.Want {
				t.Fatalf("truncation %+v, expected it to start at %d", te, next)
			}
			next += te.Have
			errs = append(errs, err)
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if next != int64(len(stream)) {
		t.Fatalf("accounted for %d of %d bytes", next, len(stream))
	}
	return payloads, errs
}

type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.b), r.n)
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// FuzzDecode feeds arbitrary bytes to the Decoder, whole and in small
// reads, and checks it never panics, accounts for every byte, returns only
// frames whose CRC checks, never buffers past the cap, and finds the same
// frames whatever the read sizes. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	var good bytes.Buffer
	enc := NewEncoder(&good, WithClock(func() uint64 { return 1 }))
	for _, m := range sampleMessages() {
		enc.Encode(m)
	}
	f.Add(good.Bytes())
	f.Add(append([]byte("garbage KTSR"), good.Bytes()...))
	f.Add(good.Bytes()[:good.Len()-3])
	f.Add(append(forged(MaxPayload), forged(70000)...))
	f.Add([]byte("junkKTSR\x01"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		p1, e1 := account(t, stream, len(stream)+1)
		p2, e2 := account(t, stream, 7)
		if len(p1) != len(p2) || len(e1) != len(e2) {
			t.Fatalf("read size changed the result: %d frames %d errors vs %d frames %d errors", len(p1), len(e1), len(p2), len(e2))
		}
		for i := range p1 {
			if !bytes.Equal(p1[i], p2[i]) {
				t.Fatalf("frame %d differs with small reads", i)
			}
		}
		for i := range e1 {
			if e1[i].Error() != e2[i].Error() {
				t.Fatalf("diagnostic %d differs with small reads: %v vs %v", i, e1[i], e2[i])
			}
		}
		// No valid frame is lost behind garbage: a good frame appended to
		// the input is returned at its offset, unless a frame the decoder
		// accepted earlier contains it.
		at := int64(len(stream))
		withGood := append(bytes.Clone(stream), frame(TypeLog, 0, 9, 'g')...)
		withGood = append(withGood, frame(TypeOutput, 0, directCRCMax+3, 'G')...)
		for _, d := range []*Decoder{NewDecoder(bytes.NewReader(withGood)), NewDecoder(&chunkReader{b: withGood, n: 5})} {
			found, covered := false, false
			for {
				f, err := d.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					continue
				}
				if f.Offset == at {
					found = true
				} else if f.Offset < at && f.Offset+int64(len(f.Raw)) > at {
					covered = true
				}
			}
			if !found && !covered {
				t.Fatalf("a valid frame appended at byte %d was lost", at)
			}
		}
		// A push decoder fed in small pieces agrees with the reader.
		pd := NewPushDecoder()
		var np int
		var pe []error
		for rest := stream; ; {
			f, err := pd.Next()
			if err == ErrNeedInput {
				if len(rest) == 0 {
					pd.CloseInput()
				} else {
					n := min(3, len(rest))
					pd.Feed(rest[:n])
					rest = rest[n:]
				}
				continue
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				pe = append(pe, err)
				continue
			}
			if !bytes.Equal(f.Payload, p1[np]) {
				t.Fatalf("push decoder frame %d differs", np)
			}
			np++
		}
		if np != len(p1) || len(pe) != len(e1) {
			t.Fatalf("push decoder: %d frames %d diagnostics, reader: %d and %d", np, len(pe), len(p1), len(e1))
		}
		for i := range pe {
			if pe[i].Error() != e1[i].Error() {
				t.Fatalf("push decoder diagnostic %d: %v vs %v", i, pe[i], e1[i])
			}
		}
	})
}

func TestMaxLengthFrameBuffersOnlyWhatArrives(t *testing.T) {
	// A header announcing a MaxPayload frame followed by a few bytes: the
	// decoder must not allocate 16 MiB for bytes that never come.
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Type: TypeLog}, nil)
	h[12], h[13], h[14], h[15] = 0, 0, 0, 1 // 16 MiB exactly
	_, errs := account(t, append(h[:], "short"...), 3)
	var te *TruncatedError
	if len(errs) != 1 || !errors.As(errs[0], &te) || te.Want != HeaderSize+MaxPayload {
		t.Fatalf("want one truncation of a %d-byte frame, got %v", HeaderSize+MaxPayload, errs)
	}
}

// TestManPageExample pins the facts man/ktstr-stream.5 gives a reader
// writing a decoder in another language: the CRC check value and the
// example frame's exact bytes.
func TestManPageExample(t *testing.T) {
	if c := crc32c([]byte("123456789")); c != 0xE3069283 {
		t.Fatalf("CRC32C check value %08x, man page says e3069283", c)
	}
	want := []byte{
		0x4b, 0x54, 0x53, 0x52, 0x01, 0x00, 0x09, 0x00, 0x07, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
		0x00, 0x2f, 0x68, 0x59, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x8c, 0x59, 0x26,
		0x01, 0x00, 0x00, 0x00,
	}
	var b bytes.Buffer
	NewEncoder(&b, WithSeq(7), WithClock(func() uint64 { return 1500000000 })).Encode(GuestExit{Code: 1})
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("example frame\n% x\nman page says\n% x", b.Bytes(), want)
	}
	// The CRC covers bytes 0..27 then the payload.
	if crc32c(append(bytes.Clone(want[:28]), want[32:]...)) != 0x26598c63 {
		t.Fatal("CRC coverage differs from the man page")
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
