package wire

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrUnknownType is wrapped by Unmarshal for types it has no layout for.
var ErrUnknownType = errors.New("unknown message type")

// ErrTooLarge is returned when a payload exceeds MaxPayload.
var ErrTooLarge = fmt.Errorf("payload exceeds %d bytes", MaxPayload)

// Encoder writes frames to an io.Writer. It is safe for concurrent use:
// each frame (header and payload) is passed to the writer in a single
// Write call, and sequence numbers follow that order.
type Encoder struct {
	mu    sync.Mutex
	w     io.Writer
	seq   uint32
	flags uint8
	clock func() uint64
	buf   []byte
}

// EncoderOption configures an Encoder.
type EncoderOption func(*Encoder)

// WithFlags sets flags stamped on every frame (FlagHost for host writers).
func WithFlags(f uint8) EncoderOption { return func(e *Encoder) { e.flags = f } }

// WithClock sets the time source for the header's time_ns field. The
// default is nanoseconds of the Go monotonic clock since the Encoder was made.
func WithClock(c func() uint64) EncoderOption { return func(e *Encoder) { e.clock = c } }

// WithSeq sets the first sequence number.
func WithSeq(s uint32) EncoderOption { return func(e *Encoder) { e.seq = s } }

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer, opts ...EncoderOption) *Encoder {
	start := time.Now()
	e := &Encoder{w: w, clock: func() uint64 { return uint64(time.Since(start)) }}
	for _, o := range opts {
		o(e)
	}
	return e
}

// WriteFrame writes one frame of type t with the given payload.
func (e *Encoder) WriteFrame(t Type, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("write %s frame: %w", t, ErrTooLarge)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	h := Header{Version: Version, Flags: e.flags, Type: t, Seq: e.seq, TimeNS: e.clock()}
	e.buf = AppendFrame(e.buf[:0], h, payload)
	if _, err := e.w.Write(e.buf); err != nil {
		return fmt.Errorf("write %s frame: %w", t, err)
	}
	e.seq++
	if cap(e.buf) > 1<<20 {
		e.buf = nil
	}
	return nil
}

// Encode marshals m and writes it as one frame.
func (e *Encoder) Encode(m Message) error {
	p, err := Marshal(m)
	if err != nil {
		return err
	}
	return e.WriteFrame(m.MsgType(), p)
}
