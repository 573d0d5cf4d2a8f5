package vmm

import (
	"io"
	"sync"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Stream is stdout: the guest's port-1 bytes pass through a
// wire.GuestRelay, so guest frames go out whole, unchanged and in order,
// while a frame only a host may write (host flag, or a type in
// 0x0100-0x01FF) is not passed on as a frame: its bytes go out with every
// 'K' defused, as do the bytes of every other corrupt region (see
// ktstr-boot(1) and ktstr-stream(5)). Host frames therefore always land
// between complete guest frames. It notices the guest-exit frame.
type Stream struct {
	mu    sync.Mutex
	w     io.Writer
	host  *wire.Encoder
	relay *wire.GuestRelay
	err   error

	firstByte   time.Time
	guestBytes  uint64
	guestFrames uint64
	exitCode    *int32
}

// NewStream returns a Stream writing to w.
func NewStream(w io.Writer) *Stream {
	s := &Stream{w: w}
	s.host = wire.NewEncoder(w, wire.WithFlags(wire.FlagHost))
	s.relay = wire.NewGuestRelay(w)
	s.relay.OnFrame = s.frameDone
	return s
}

// Write passes guest bytes through. It returns the writer's error, which
// sticks: after it the guest's bytes are consumed and dropped so that the
// guest never blocks on a dead reader.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstByte.IsZero() && len(p) > 0 {
		s.firstByte = time.Now()
	}
	s.guestBytes += uint64(len(p))
	s.relay.Write(p)
	if s.err == nil {
		s.err = s.relay.Err()
	}
	return len(p), nil
}

// CloseGuest ends the guest's stream: a guest frame cut off by the end of
// the run goes out (defused, as a corrupt region). Call it once the guest
// can write no more, before the VM-exit frame.
func (s *Stream) CloseGuest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relay.Close()
	if s.err == nil {
		s.err = s.relay.Err()
	}
}

// Err returns the first write error.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// frameDone is called, with s.mu held, for every guest frame passed on.
func (s *Stream) frameDone(f *wire.Frame) {
	s.guestFrames++
	if f.Type != wire.TypeGuestExit {
		return
	}
	if m, err := wire.Unmarshal(wire.TypeGuestExit, f.Payload); err == nil {
		c := m.(wire.GuestExit).Code
		s.exitCode = &c
	}
}

// Refused returns how many frames of host-only types (or with the host
// flag) the guest wrote; none was passed on as a frame.
func (s *Stream) Refused() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(s.relay.Refused())
}

// AtBoundary reports whether no guest bytes are held back undecided (a
// frame partly received). Host frames may be written either way.
func (s *Stream) AtBoundary() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relay.Held() == 0
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

// WriteHost writes a host frame. It always lands between whole guest
// frames: the relay holds a partly received guest frame back.
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
