package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Frame is one decoded frame. Payload and Raw alias the Decoder's buffer
// and are valid only until the next call to Next or Feed.
type Frame struct {
	Header
	Offset  int64  // byte offset of the header in the stream
	Payload []byte // the payload bytes
	Raw     []byte // the whole frame as it was read: header then payload
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

// ErrNeedInput is returned by Next on a push decoder (NewPushDecoder) when
// it cannot say what comes next until more bytes are fed or the input is
// closed. Decoding state is kept: call Feed or CloseInput, then Next again.
var ErrNeedInput = errors.New("wire: decoder needs more input")

// Decoder reads frames from an io.Reader (NewDecoder) or from bytes
// handed to it (NewPushDecoder). Next returns frames as soon as they are
// complete. On corruption it returns a *CorruptError describing the
// skipped bytes and resumes at the next offset where a frame is accepted;
// at the end of a stream cut mid-frame it returns a *TruncatedError; at a
// clean end it returns io.EOF. Any other error comes from the reader.
//
// Resynchronization follows man/ktstr-stream.5 exactly: offsets are tried
// in order and the first one where a whole frame's CRC checks is accepted,
// whatever frames before it claimed, so no valid frame is ever lost. The
// cost stays linear in the input however many overlapping headers claim
// large lengths: a large candidate's CRC is computed from running CRCs
// kept every cpStep bytes (see prefix) in constant time, not by re-reading
// its payload.
type Decoder struct {
	r      io.Reader // nil for a push decoder
	buf    []byte
	start  int   // first unconsumed byte in buf
	end    int   // end of valid data in buf
	off    int64 // stream offset of buf[start]
	eof    bool
	rerr   error
	minBuf int

	guestOnly bool
	refused   int64 // headers GuestOnly refused

	// The region being skipped, kept across calls (a push decoder returns
	// in the middle of one).
	skipStart  int64 // -1: not skipping
	skipReason string
	truncAt    int64 // first offset in the region cut short by the end of stream; -1: none
	truncWant  int64
	pending    error // a diagnostic to return before anything else

	// cp[j] is the CRC32C of some bytes before buf[0] followed by
	// buf[:j*cpStep]; see prefix.
	cp []uint32
	// crcTotal counts all bytes run through the CRC (for tests).
	crcTotal int64
}

const defaultBuf = 256 << 10

// cpStep is the distance between running CRCs; directCRCMax the largest
// frame whose CRC is computed directly over its bytes.
const (
	cpStep       = 256
	directCRCMax = 4096
)

// DecoderOption configures a Decoder.
type DecoderOption func(*Decoder)

// GuestOnly makes the decoder refuse frames that only a host may write:
// a header with the host flag set or a type in the host range
// (0x0100-0x01FF) is not accepted as a frame, whatever its CRC, so its
// bytes become part of a corrupt region (reason "host frame from the
// guest ..."). A VMM reading its guest's stream uses it so that a guest
// cannot forge host frames (see GuestRelay).
func GuestOnly() DecoderOption { return func(d *Decoder) { d.guestOnly = true } }

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader, opts ...DecoderOption) *Decoder {
	d := &Decoder{r: r, minBuf: defaultBuf, skipStart: -1, truncAt: -1, cp: []uint32{0}}
	for _, o := range opts {
		o(d)
	}
	return d
}

// NewPushDecoder returns a Decoder that is handed its input with Feed
// and CloseInput instead of reading it; Next returns ErrNeedInput when it
// has to wait for more.
func NewPushDecoder(opts ...DecoderOption) *Decoder {
	return NewDecoder(nil, opts...)
}

// Offset returns the stream offset of the next unconsumed byte: every
// byte before it has been returned in a frame or skipped.
func (d *Decoder) Offset() int64 { return d.off }

// Buffered returns how many bytes the decoder holds that it has not yet
// returned or skipped.
func (d *Decoder) Buffered() int { return d.end - d.start }

// Refused returns how many headers of host frames a GuestOnly decoder
// has refused (each counted once, whatever its CRC).
func (d *Decoder) Refused() int64 { return d.refused }

// Feed appends p to a push decoder's input. p is copied.
func (d *Decoder) Feed(p []byte) {
	if d.r != nil {
		panic("wire: Feed on a Decoder that reads from an io.Reader")
	}
	if len(d.buf)-d.end < len(p) {
		d.compact()
		if len(d.buf)-d.end < len(p) {
			nb := make([]byte, max(d.minBuf, 2*len(d.buf), d.end+len(p)))
			copy(nb, d.buf[:d.end])
			d.buf = nb
		}
	}
	d.end += copy(d.buf[d.end:], p)
}

// CloseInput tells a push decoder that its input has ended.
func (d *Decoder) CloseInput() { d.eof = true }

// compact moves the unconsumed bytes to the front of the buffer, keeping
// buf[0] at a multiple of cpStep from where it was so that the running
// CRCs stay valid.
func (d *Decoder) compact() {
	s := d.start &^ (cpStep - 1)
	if s == 0 {
		return
	}
	copy(d.buf, d.buf[s:d.end])
	d.start -= s
	d.end -= s
	if k := s / cpStep; k < len(d.cp) {
		d.cp = d.cp[:copy(d.cp, d.cp[k:])]
	} else {
		d.cp = append(d.cp[:0], 0)
	}
}

// fill makes at least n bytes available from d.start, unless the stream
// ends first (or, for a push decoder, the fed bytes run out). It returns
// the number of bytes available. n never exceeds HeaderSize+MaxPayload.
// The buffer grows only when it is full of unconsumed bytes, by doubling,
// so its size is bounded by twice the bytes actually received (and by
// maxBuf): a length field claims memory only as the bytes it announces
// arrive.
func (d *Decoder) fill(n int) int {
	for d.end-d.start < n && !d.eof && d.rerr == nil && d.r != nil {
		if d.end == len(d.buf) && (d.start >= len(d.buf)/4 || len(d.buf) >= d.maxBuf()) {
			// Move bytes only when that frees a good part of the buffer, so
			// that the bytes moved stay proportional to the bytes read.
			d.compact()
		}
		if d.end == len(d.buf) {
			size := min(max(d.minBuf, 2*len(d.buf)), d.maxBuf())
			nb := make([]byte, size)
			copy(nb, d.buf[:d.end])
			d.buf = nb
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

// maxBuf is the largest buffer a reading decoder grows: a maximal frame
// plus a quarter more, so that a full buffer always frees at least a
// quarter of itself when compacted.
func (d *Decoder) maxBuf() int {
	return max(HeaderSize+MaxPayload+(HeaderSize+MaxPayload)/4, d.minBuf)
}

func (d *Decoder) consume(n int) {
	d.start += n
	d.off += int64(n)
}

// prefix returns the running CRC at buffer index k, extending the table
// of running CRCs as far as k needs. Over a decoder's life every byte is
// summed into the table at most once, and a query sums under cpStep more.
func (d *Decoder) prefix(k int) uint32 {
	j := k / cpStep
	for n := len(d.cp) - 1; n < j; n++ {
		d.cp = append(d.cp, crcUpdate(d.cp[n], d.buf[n*cpStep:(n+1)*cpStep]))
		d.crcTotal += cpStep
	}
	d.crcTotal += int64(k - j*cpStep)
	return crcUpdate(d.cp[j], d.buf[j*cpStep:k])
}

// frameCRC computes the CRC the complete frame of total bytes at d.start
// must carry.
func (d *Decoder) frameCRC(total int) uint32 {
	b := d.buf[d.start : d.start+total]
	if total <= directCRCMax {
		d.crcTotal += int64(total)
		return FrameCRC(b, b[HeaderSize:])
	}
	// crc(hdr[:28] ‖ payload) = shift(crc(hdr[:28]), L) ⊕ crc(payload), and
	// crc(payload) = prefix(end) ⊕ shift(prefix(payload start), L).
	d.crcTotal += 28
	l := total - HeaderSize
	h := crcUpdate(0, b[:28])
	return crcShift(h^d.prefix(d.start+HeaderSize), l) ^ d.prefix(d.start+total)
}

// partialHeader says why b, shorter than a header, cannot be the start of
// a frame: "" when it can (each byte present agrees with a valid header:
// the magic, version 1, and a length within the cap once all four length
// bytes are there).
func partialHeader(b []byte) string {
	if !bytes.HasPrefix(Magic[:], b[:min(len(b), 4)]) {
		return "bad magic"
	}
	if len(b) > 4 && b[4] != Version {
		return fmt.Sprintf("unsupported version %d", b[4])
	}
	if len(b) >= 16 {
		if l := uint32(b[12]) | uint32(b[13])<<8 | uint32(b[14])<<16 | uint32(b[15])<<24; l > MaxPayload {
			return fmt.Sprintf("length %d exceeds the %d-byte cap", l, MaxPayload)
		}
	}
	return ""
}

// candidate checks for a complete valid frame at d.start. It returns the
// frame length, or 0 with a reason, or need > 0 when the bytes present are
// the start of a possible frame of need bytes and more input is needed to
// tell.
func (d *Decoder) candidate() (h Header, total int, reason string, need int) {
	avail := d.fill(HeaderSize)
	if avail < HeaderSize {
		if reason := partialHeader(d.buf[d.start:d.end]); reason != "" {
			return h, 0, reason, 0
		}
		return h, 0, "", HeaderSize
	}
	h, err := ParseHeader(d.buf[d.start : d.start+HeaderSize])
	if err != nil {
		return h, 0, err.Error(), 0
	}
	if d.guestOnly && (h.Flags&FlagHost != 0 || h.Type.IsHost()) {
		d.refused++
		return h, 0, fmt.Sprintf("host frame from the guest (type %s, flags %#x)", h.Type, h.Flags), 0
	}
	total = HeaderSize + int(h.Length)
	if avail = d.fill(total); avail < total {
		return h, 0, "", total
	}
	if got := d.frameCRC(total); got != h.CRC {
		return h, 0, fmt.Sprintf("CRC mismatch (header says %08x, computed %08x)", h.CRC, got), 0
	}
	return h, total, "", 0
}

// Next returns the next frame or an error as described on Decoder.
func (d *Decoder) Next() (*Frame, error) {
	if err := d.pending; err != nil {
		d.pending = nil
		return nil, err
	}
	for {
		h, total, reason, need := d.candidate()
		if total > 0 {
			if d.skipStart >= 0 {
				// Report the skipped region first; the frame stays
				// buffered and is returned by the next call.
				err := &CorruptError{Offset: d.skipStart, Skipped: d.off - d.skipStart, Reason: d.skipReason}
				d.skipStart, d.truncAt = -1, -1
				return nil, err
			}
			b := d.buf[d.start : d.start+total]
			f := &Frame{Header: h, Offset: d.off, Payload: b[HeaderSize:], Raw: b}
			d.consume(total)
			return f, nil
		}
		if need > 0 && !d.eof {
			// Only when no more input can be had now.
			if d.rerr != nil {
				return nil, d.rerr
			}
			return nil, ErrNeedInput
		}
		if d.end == d.start {
			if d.rerr != nil {
				return nil, d.rerr
			}
			if !d.eof {
				return nil, ErrNeedInput
			}
			return nil, d.endOfStream()
		}
		if need > 0 {
			// The stream ended inside what may be a frame. Scan the rest:
			// a later good frame makes this corruption; none makes it a
			// truncated last frame.
			reason = fmt.Sprintf("frame of %d bytes cut short by end of stream (%d bytes present)", need, d.end-d.start)
			if d.truncAt < 0 {
				d.truncAt, d.truncWant = d.off, int64(need)
			}
		}
		// Not a frame here: skip to the next possible magic.
		if d.skipStart < 0 {
			d.skipStart, d.skipReason = d.off, reason
		}
		d.consume(1)
		if i := bytes.IndexByte(d.buf[d.start:d.end], Magic[0]); i >= 0 {
			d.consume(i)
		} else {
			d.consume(d.end - d.start)
		}
	}
}

// endOfStream closes the region being skipped, if any, at the end of the
// stream: bytes from the first offset cut short by the end of stream on
// are a truncated frame, any before it a corrupt region.
func (d *Decoder) endOfStream() error {
	s, t := d.skipStart, d.truncAt
	d.skipStart, d.truncAt = -1, -1
	switch {
	case s < 0:
		return io.EOF
	case t < 0:
		return &CorruptError{Offset: s, Skipped: d.off - s, Reason: d.skipReason}
	case t == s:
		return &TruncatedError{Offset: t, Have: d.off - t, Want: d.truncWant}
	}
	d.pending = &TruncatedError{Offset: t, Have: d.off - t, Want: d.truncWant}
	return &CorruptError{Offset: s, Skipped: t - s, Reason: d.skipReason}
}

// IsCorruption reports whether err is a decode diagnostic (corruption or
// truncation) after which decoding may continue.
func IsCorruption(err error) bool {
	var c *CorruptError
	var t *TruncatedError
	return errors.As(err, &c) || errors.As(err, &t)
}
