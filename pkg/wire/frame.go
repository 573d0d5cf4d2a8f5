package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Layout of the fixed frame header. All integers are little-endian.
//
//	off size field
//	  0    4 magic     "KTSR" (0x4B 0x54 0x53 0x52)
//	  4    1 version   Version (1)
//	  5    1 flags     FlagHost (bit 0); other bits reserved, written as 0
//	  6    2 type      message Type
//	  8    4 seq       per-writer sequence number, starts at 0, wraps
//	 12    4 length    payload length in bytes, at most MaxPayload
//	 16    8 time_ns   writer's monotonic clock in nanoseconds
//	 24    4 reserved  written as 0; readers ignore it
//	 28    4 crc       CRC32C (Castagnoli) of bytes 0..27 then the payload
const (
	HeaderSize = 32
	Version    = 1
	MaxPayload = 16 << 20
)

// Magic is the first four bytes of every frame.
var Magic = [4]byte{'K', 'T', 'S', 'R'}

// Flags.
const (
	// FlagHost marks a frame added on the host side (ktstr-boot,
	// ktstr-monitor) rather than written by the guest.
	FlagHost uint8 = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed part of a frame.
type Header struct {
	Version uint8
	Flags   uint8
	Type    Type
	Seq     uint32
	Length  uint32
	TimeNS  uint64
	CRC     uint32
}

// PutHeader writes h into b[:HeaderSize] with magic and the CRC computed
// over the header and payload. h.Length is set from len(payload).
func PutHeader(b []byte, h *Header, payload []byte) {
	_ = b[HeaderSize-1]
	h.Length = uint32(len(payload))
	if h.Version == 0 {
		h.Version = Version
	}
	copy(b[0:4], Magic[:])
	b[4] = h.Version
	b[5] = h.Flags
	binary.LittleEndian.PutUint16(b[6:], uint16(h.Type))
	binary.LittleEndian.PutUint32(b[8:], h.Seq)
	binary.LittleEndian.PutUint32(b[12:], h.Length)
	binary.LittleEndian.PutUint64(b[16:], h.TimeNS)
	binary.LittleEndian.PutUint32(b[24:], 0)
	c := crc32.Update(0, castagnoli, b[:28])
	c = crc32.Update(c, castagnoli, payload)
	h.CRC = c
	binary.LittleEndian.PutUint32(b[28:], c)
}

// AppendFrame appends one complete frame (header and payload) to dst.
func AppendFrame(dst []byte, h Header, payload []byte) []byte {
	var hb [HeaderSize]byte
	PutHeader(hb[:], &h, payload)
	dst = append(dst, hb[:]...)
	return append(dst, payload...)
}

// HeaderError says why bytes are not a plausible frame header.
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return e.Reason }

// ParseHeader decodes the fixed header in b[:HeaderSize] without checking
// the CRC (which needs the payload). It rejects a wrong magic, an unknown
// version and a length above MaxPayload.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, &HeaderError{"short header"}
	}
	if b[0] != Magic[0] || b[1] != Magic[1] || b[2] != Magic[2] || b[3] != Magic[3] {
		return Header{}, &HeaderError{"bad magic"}
	}
	h := Header{
		Version: b[4],
		Flags:   b[5],
		Type:    Type(binary.LittleEndian.Uint16(b[6:])),
		Seq:     binary.LittleEndian.Uint32(b[8:]),
		Length:  binary.LittleEndian.Uint32(b[12:]),
		TimeNS:  binary.LittleEndian.Uint64(b[16:]),
		CRC:     binary.LittleEndian.Uint32(b[28:]),
	}
	if h.Version != Version {
		return h, &HeaderError{fmt.Sprintf("unsupported version %d", h.Version)}
	}
	if h.Length > MaxPayload {
		return h, &HeaderError{fmt.Sprintf("length %d exceeds the %d-byte cap", h.Length, MaxPayload)}
	}
	return h, nil
}

// FrameCRC computes the CRC32C a frame with this header bytes and payload
// must carry. hdr must hold at least the first 28 header bytes.
func FrameCRC(hdr, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[:28])
	return crc32.Update(c, castagnoli, payload)
}
