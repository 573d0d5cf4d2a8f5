package vmm

import (
	"io"
	"sync"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Stream is stdout: the guest's port-1 bytes pass through unchanged and
// in order, and host frames are placed only between complete guest frames.
// It follows the guest's frame boundaries with wire.ParseHeader and
// notices the guest-exit frame (checked with wire.FrameCRC).
type Stream struct {
	mu   sync.Mutex
	w    io.Writer
	host *wire.Encoder
	err  error

	// frame tracking
	hdr       [wire.HeaderSize]byte
	hdrN      int
	remaining uint32
	cur       wire.Header
	payload   []byte // captured payload of small frames (guest exit)
	capture   bool

	firstByte   time.Time
	guestBytes  uint64
	guestFrames uint64
	exitCode    *int32
}

const capturePayloadMax = 64

// NewStream returns a Stream writing to w.
func NewStream(w io.Writer) *Stream {
	s := &Stream{w: w}
	s.host = wire.NewEncoder(w, wire.WithFlags(wire.FlagHost))
	return s
}

// Write passes guest bytes through. It returns the writer's error, which
// sticks: after it the guest's bytes are consumed and dropped so that the
// guest never blocks on a dead reader.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		if _, err := s.w.Write(p); err != nil {
			s.err = err
		}
	}
	s.track(p)
	return len(p), nil
}

// Err returns the first write error.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Stream) track(p []byte) {
	if s.firstByte.IsZero() && len(p) > 0 {
		s.firstByte = time.Now()
	}
	s.guestBytes += uint64(len(p))
	for len(p) > 0 {
		if s.remaining > 0 {
			n := min(uint32(len(p)), s.remaining)
			if s.capture {
				s.payload = append(s.payload, p[:n]...)
			}
			s.remaining -= n
			p = p[n:]
			if s.remaining == 0 {
				s.frameDone()
			}
			continue
		}
		// collecting a header
		if s.hdrN < 4 && p[0] != wire.Magic[s.hdrN] {
			// not a frame start: resynchronise on the next magic byte
			s.hdrN = 0
			if p[0] != wire.Magic[0] {
				p = p[1:]
			}
			continue
		}
		n := copy(s.hdr[s.hdrN:], p)
		s.hdrN += n
		p = p[n:]
		if s.hdrN < wire.HeaderSize {
			continue
		}
		h, err := wire.ParseHeader(s.hdr[:])
		if err != nil {
			// bad header: drop its first byte and rescan the rest
			rest := append([]byte(nil), s.hdr[1:]...)
			s.hdrN = 0
			s.track(rest)
			s.guestBytes -= uint64(len(rest))
			continue
		}
		s.cur = h
		s.remaining = h.Length
		s.capture = h.Type == wire.TypeGuestExit && h.Length <= capturePayloadMax
		s.payload = s.payload[:0]
		if s.remaining == 0 {
			s.frameDone()
		}
	}
}

func (s *Stream) frameDone() {
	s.hdrN = 0
	s.guestFrames++
	if !s.capture {
		return
	}
	s.capture = false
	if wire.FrameCRC(s.hdr[:], s.payload) != s.cur.CRC {
		return
	}
	if m, err := wire.Unmarshal(wire.TypeGuestExit, s.payload); err == nil {
		c := m.(wire.GuestExit).Code
		s.exitCode = &c
	}
}

// AtBoundary reports whether no guest frame is partially written.
func (s *Stream) AtBoundary() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hdrN == 0 && s.remaining == 0
}

// GuestExit returns the code of the guest-exit frame, if one arrived.
func (s *Stream) GuestExit() (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exitCode == nil {
		return 0, false
	}
	return *s.exitCode, true
}

// Counts returns guest bytes and complete guest frames seen.
func (s *Stream) Counts() (bytes, frames uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.guestBytes, s.guestFrames
}

// WriteHost writes a host frame. Called between guest writes it always
// lands on a frame boundary unless the guest stopped mid-frame (then the
// partial frame is cut, which decoders report as corruption).
func (s *Stream) WriteHost(m wire.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := s.host.Encode(m); err != nil {
		s.err = err
		return err
	}
	return nil
}

// FirstByte returns when the guest's first stream byte arrived (zero if
// none did).
func (s *Stream) FirstByte() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstByte
}
