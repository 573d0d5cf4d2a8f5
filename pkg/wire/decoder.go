package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
)

// Frame is one decoded frame. Payload aliases the Decoder's buffer and is
// valid only until the next call to Next.
type Frame struct {
	Header
	Offset  int64 // byte offset of the header in the stream
	Payload []byte
}

// CorruptError reports bytes the decoder skipped: Offset is where the
// skipped region starts, Skipped how many bytes it spans, Reason what was
// wrong with the first candidate at Offset.
type CorruptError struct {
	Offset  int64
	Skipped int64
	Reason  string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt stream at byte %d: %s; skipped %d bytes", e.Offset, e.Reason, e.Skipped)
}

// TruncatedError reports a frame cut off by the end of the stream.
type TruncatedError struct {
	Offset int64
	Have   int64 // bytes present from Offset to end of stream
	Want   int64 // bytes the frame needs
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("truncated frame at byte %d: stream ends after %d of %d bytes", e.Offset, e.Have, e.Want)
}

// Decoder reads frames from an io.Reader. Next returns frames as soon as
// they are complete. On corruption it returns a *CorruptError describing
// the skipped bytes and resumes at the next header whose CRC checks; at
// the end of a stream cut mid-frame it returns a *TruncatedError; at a
// clean end it returns io.EOF. Any other error comes from the reader.
type Decoder struct {
	r      io.Reader
	buf    []byte
	start  int   // first unconsumed byte in buf
	end    int   // end of valid data in buf
	off    int64 // stream offset of buf[start]
	eof    bool
	rerr   error
	minBuf int
	// lastCRC is how many bytes the last candidate check ran the CRC over.
	lastCRC int64
	// crcTotal counts all bytes run through the CRC (for tests).
	crcTotal int64
}

const defaultBuf = 256 << 10

// Resynchronization work budget (see Next).
const (
	resyncSlack   = 2 * (HeaderSize + MaxPayload)
	resyncPerByte = 8
)

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: r, minBuf: defaultBuf}
}

// Offset returns the stream offset of the next unconsumed byte.
func (d *Decoder) Offset() int64 { return d.off }

// fill makes at least n bytes available from d.start, unless the stream
// ends first. It returns the number of bytes available. n never exceeds
// HeaderSize+MaxPayload. The buffer grows only when it is full of unconsumed
// bytes, by doubling, so its size is bounded by twice the bytes actually
// received (and by HeaderSize+MaxPayload+minBuf): a length field claims
// memory only as the bytes it announces arrive.
func (d *Decoder) fill(n int) int {
	for d.end-d.start < n && !d.eof && d.rerr == nil {
		if d.end == len(d.buf) {
			if d.start > 0 {
				copy(d.buf, d.buf[d.start:d.end])
				d.end -= d.start
				d.start = 0
			} else {
				size := min(max(d.minBuf, 2*len(d.buf)), HeaderSize+MaxPayload+d.minBuf)
				nb := make([]byte, size)
				copy(nb, d.buf[:d.end])
				d.buf = nb
			}
		} else if d.start == d.end && d.start > 0 {
			d.start, d.end = 0, 0
		}
		m, err := d.r.Read(d.buf[d.end:])
		d.end += m
		if err == io.EOF {
			d.eof = true
		} else if err != nil {
			d.rerr = err
		}
	}
	return d.end - d.start
}

func (d *Decoder) consume(n int) {
	d.start += n
	d.off += int64(n)
}

// candidate checks for a complete valid frame at d.start. It returns the
// frame length, or 0 with a reason, or -1 if more input is needed to tell
// (only returned when the stream has not ended).
//
// limit caps the frame size the CRC may be computed over: while
// resynchronizing, Next passes what is left of its work budget so that a
// stream of overlapping forged headers costs linear, not quadratic, time.
func (d *Decoder) candidate(limit int64) (h Header, total int, reason string, need int) {
	avail := d.fill(HeaderSize)
	if avail < HeaderSize {
		// Could still be a prefix of a header.
		b := d.buf[d.start:d.end]
		if bytes.HasPrefix(Magic[:], b[:min(len(b), 4)]) {
			return h, 0, "", HeaderSize
		}
		return h, 0, "bad magic", 0
	}
	d.lastCRC = 0
	h, err := ParseHeader(d.buf[d.start : d.start+HeaderSize])
	if err != nil {
		return h, 0, err.Error(), 0
	}
	total = HeaderSize + int(h.Length)
	if int64(total) > limit {
		return h, 0, fmt.Sprintf("resync work budget exhausted (candidate frame of %d bytes not checked)", total), 0
	}
	if avail = d.fill(total); avail < total {
		return h, 0, "", total
	}
	b := d.buf[d.start : d.start+total]
	d.lastCRC = int64(total)
	d.crcTotal += int64(total)
	if got := FrameCRC(b, b[HeaderSize:]); got != h.CRC {
		return h, 0, fmt.Sprintf("CRC mismatch (header says %08x, computed %08x)", h.CRC, got), 0
	}
	return h, total, "", 0
}

// Next returns the next frame or an error as described on Decoder.
func (d *Decoder) Next() (*Frame, error) {
	var skipStart int64 = -1
	var skipReason string
	var truncWant int64 // >0 when the skipped region began with a cut-off frame
	var work int64      // bytes CRC-checked since the skipped region began
	for {
		limit := int64(math.MaxInt64)
		if skipStart >= 0 {
			// Resync budget: two maximal frames plus 8 bytes of CRC work
			// per byte skipped. Random corruption never comes near it;
			// forged headers claiming large lengths run into it.
			limit = resyncSlack + resyncPerByte*(d.off-skipStart) - work
		}
		h, total, reason, need := d.candidate(limit)
		if skipStart >= 0 {
			work += d.lastCRC
		}
		if total > 0 {
			if skipStart >= 0 {
				// Report the skipped region first; the frame stays
				// buffered and is returned by the next call.
				return nil, &CorruptError{Offset: skipStart, Skipped: d.off - skipStart, Reason: skipReason}
			}
			f := &Frame{Header: h, Offset: d.off, Payload: d.buf[d.start+HeaderSize : d.start+total]}
			d.consume(total)
			return f, nil
		}
		if d.rerr != nil {
			return nil, d.rerr
		}
		if d.end == d.start {
			switch {
			case truncWant > 0:
				return nil, &TruncatedError{Offset: skipStart, Have: d.off - skipStart, Want: truncWant}
			case skipStart >= 0:
				return nil, &CorruptError{Offset: skipStart, Skipped: d.off - skipStart, Reason: skipReason}
			}
			return nil, io.EOF
		}
		if need > 0 {
			// The stream ended inside what looks like a frame. Scan the
			// rest: a later good frame makes this corruption, none makes
			// it a truncated last frame.
			reason = fmt.Sprintf("frame of %d bytes cut short by end of stream (%d bytes present)", need, d.end-d.start)
			if skipStart < 0 {
				truncWant = int64(need)
			}
		}
		// Not a frame here: skip to the next possible magic.
		if skipStart < 0 {
			skipStart, skipReason = d.off, reason
		}
		d.consume(1)
		if i := bytes.IndexByte(d.buf[d.start:d.end], Magic[0]); i >= 0 {
			d.consume(i)
		} else {
			d.consume(d.end - d.start)
		}
	}
}

// IsCorruption reports whether err is a decode diagnostic (corruption or
// truncation) after which decoding may continue.
func IsCorruption(err error) bool {
	var c *CorruptError
	var t *TruncatedError
	return errors.As(err, &c) || errors.As(err, &t)
}
