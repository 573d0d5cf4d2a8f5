package wire

import (
	"errors"
	"io"
)

// Defused is the byte a GuestRelay writes in place of every 0x4B ('K')
// that is not part of a guest frame it passes on.
const Defused = 'k'

// GuestRelay passes a guest's stream on to a writer that also carries the
// host's own frames (ktstr-boot's standard output, the lab's stream file),
// so that a guest cannot forge host frames:
//
//   - a guest frame (CRC checks, no host flag, type outside 0x0100-0x01FF)
//     is written whole and unchanged, once its last byte has arrived;
//   - every other byte, including a frame with the host flag or a host
//     type, is written as it is except that each 0x4B ('K') becomes 0x6B
//     ('k'), so that no reader can find a frame in it that the relay did not
//     check: readers see the same corrupt regions at the same offsets
//     ("bad magic"), and never a host frame the guest wrote.
//
// Nothing is dropped and no byte moves: offsets in the output are the
// guest's offsets plus the bytes of host frames written in between. Host
// frames may be written to the same writer between any two calls of
// Write; the relay only ever writes whole guest frames and defused bytes.
// Bytes that may still begin a frame are held until they are decided
// (at most one frame, 16 MiB and 32 bytes).
type GuestRelay struct {
	w   io.Writer
	dec *Decoder
	fwd int64 // stream offset written so far
	err error
	tmp []byte

	// OnFrame, when set, is called with every guest frame passed on,
	// before it is written.
	OnFrame func(*Frame)
	// OnDiag, when set, is called with every *CorruptError and
	// *TruncatedError of the guest's stream as the relay's decoder sees it
	// (a refused host frame's reason starts "host frame from the guest").
	OnDiag func(error)
}

// NewGuestRelay returns a relay writing to w.
func NewGuestRelay(w io.Writer) *GuestRelay {
	return &GuestRelay{w: w, dec: NewPushDecoder(GuestOnly())}
}

// Write passes p on as described on GuestRelay. It always consumes all of
// p; the first error of the underlying writer is returned and sticks, and
// after it nothing more is written (decoding and the callbacks go on).
func (g *GuestRelay) Write(p []byte) (int, error) {
	g.dec.Feed(p)
	g.drain()
	return len(p), g.err
}

// Close ends the guest's stream: held bytes (a frame cut off) are written,
// defused. Nothing may be written after it.
func (g *GuestRelay) Close() error {
	g.dec.CloseInput()
	g.drain()
	return g.err
}

// Err returns the first error of the underlying writer.
func (g *GuestRelay) Err() error { return g.err }

// Refused returns how many headers of host frames the guest wrote; none
// was passed on as a frame.
func (g *GuestRelay) Refused() int64 { return g.dec.Refused() }

// Held returns how many guest bytes the relay holds back, undecided.
func (g *GuestRelay) Held() int { return g.dec.Buffered() }

func (g *GuestRelay) drain() {
	for {
		f, err := g.dec.Next()
		switch {
		case err == nil:
			g.defuse(f.Offset)
			if g.OnFrame != nil {
				g.OnFrame(f)
			}
			g.write(f.Raw)
			g.fwd = f.Offset + int64(len(f.Raw))
			continue
		case IsCorruption(err):
			if g.OnDiag != nil {
				g.OnDiag(err)
			}
			continue
		case errors.Is(err, ErrNeedInput), errors.Is(err, io.EOF):
		}
		// Bytes the decoder has skipped need not wait for the region's end.
		g.defuse(g.dec.Offset())
		return
	}
}

// defuse writes the skipped bytes from g.fwd up to stream offset to.
// They are still in the decoder's buffer: it consumes bytes without
// discarding them until the next Feed.
func (g *GuestRelay) defuse(to int64) {
	n := int(to - g.fwd)
	if n <= 0 {
		return
	}
	src := g.dec.buf[g.dec.start-int(g.dec.off-g.fwd) : g.dec.start-int(g.dec.off-to)]
	g.tmp = append(g.tmp[:0], src...)
	for i, c := range g.tmp {
		if c == Magic[0] {
			g.tmp[i] = Defused
		}
	}
	g.write(g.tmp)
	g.fwd = to
}

func (g *GuestRelay) write(b []byte) {
	if g.err == nil && len(b) > 0 {
		if _, err := g.w.Write(b); err != nil {
			g.err = err
		}
	}
}
