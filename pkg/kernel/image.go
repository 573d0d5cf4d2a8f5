package kernel

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/ktstr-go/ktstr/pkg/regfile"
)

// ErrNoIKConfig means the image holds no embedded configuration: the
// kernel was built without CONFIG_IKCONFIG=y (=m puts it in a module).
var ErrNoIKConfig = errors.New("no embedded configuration (the kernel has no CONFIG_IKCONFIG=y)")

// ErrNotKernel means the file is neither a bzImage nor an ELF vmlinux.
var ErrNotKernel = errors.New("not a bzImage or ELF vmlinux")

// UnsupportedCompressionError names a bzImage payload compression this
// package cannot decompress (xz, lzma, lzo).
type UnsupportedCompressionError struct{ Name string }

func (e *UnsupportedCompressionError) Error() string {
	return fmt.Sprintf("the bzImage payload is %s-compressed, which ktstr cannot decompress (it reads gzip, zstd, lz4 and bzip2): put the kernel's .config beside it as config", e.Name)
}

// maxImage bounds the decompressed bytes scanned for the IKCONFIG
// marker; a kernel image is well under this.
const maxImage = 1 << 30

var ikcfgStart = []byte("IKCFG_ST")

// ReadIKConfig returns the configuration embedded in a bzImage (in its
// compressed payload) or an ELF vmlinux, and the payload's compression
// ("none" for a vmlinux).
func ReadIKConfig(path string) (Config, string, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var hdr [0x268]byte
	n, _ := io.ReadFull(f, hdr[:])
	if n >= 4 && string(hdr[:4]) == "\x7fELF" {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, "", err
		}
		cfg, err := scanIKConfig(io.LimitReader(f, maxImage))
		return cfg, "none", err
	}
	r, comp, err := BzImagePayload(f, st.Size())
	if err != nil {
		return nil, comp, err
	}
	cfg, err := scanIKConfig(r)
	return cfg, comp, err
}

// BzImagePayload returns a reader of the decompressed kernel inside a
// bzImage (boot protocol 2.08 or later) and the payload's compression.
func BzImagePayload(f io.ReaderAt, size int64) (io.Reader, string, error) {
	var hdr [0x268]byte
	if n, _ := f.ReadAt(hdr[:], 0); n < len(hdr) || string(hdr[0x202:0x206]) != "HdrS" {
		return nil, "", ErrNotKernel
	}
	if v := binary.LittleEndian.Uint16(hdr[0x206:]); v < 0x208 {
		return nil, "", fmt.Errorf("bzImage boot protocol %d.%02d has no payload fields (need 2.08)", v>>8, v&0xff)
	}
	setup := int64(hdr[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	length := int64(binary.LittleEndian.Uint32(hdr[0x24c:]))
	// The payload ends with the decompressed size (4 bytes, little endian)
	// that the kernel's own decompressor reads; the stream is what precedes it.
	if length < 8 || off+length > size {
		return nil, "", fmt.Errorf("bzImage payload (%d bytes at %d) lies outside the %d-byte file: truncated or corrupt", length, off, size)
	}
	payload := io.NewSectionReader(f, off, length-4)
	var magic [6]byte
	if _, err := payload.ReadAt(magic[:], 0); err != nil {
		return nil, "", fmt.Errorf("read bzImage payload: %w", err)
	}
	return decompressor(payload, magic[:])
}

func decompressor(payload io.Reader, magic []byte) (io.Reader, string, error) {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(payload)
		if err != nil {
			return nil, "gzip", fmt.Errorf("gzip payload: %w", err)
		}
		zr.Multistream(false)
		return io.LimitReader(zr, maxImage), "gzip", nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(payload, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxImage), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, "zstd", fmt.Errorf("zstd payload: %w", err)
		}
		return io.LimitReader(zr.IOReadCloser(), maxImage), "zstd", nil
	case bytes.HasPrefix(magic, []byte{0x02, 0x21, 0x4c, 0x18}), bytes.HasPrefix(magic, []byte{0x04, 0x22, 0x4d, 0x18}):
		return io.LimitReader(lz4.NewReader(payload), maxImage), "lz4", nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return io.LimitReader(bzip2.NewReader(payload), maxImage), "bzip2", nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, "xz", &UnsupportedCompressionError{"xz"}
	case bytes.HasPrefix(magic, []byte{0x5d, 0, 0}):
		return nil, "lzma", &UnsupportedCompressionError{"lzma"}
	case bytes.HasPrefix(magic, []byte{0x89, 'L', 'Z', 'O'}):
		return nil, "lzo", &UnsupportedCompressionError{"lzo"}
	}
	return nil, "unknown", fmt.Errorf("bzImage payload has an unknown compression (magic % x)", magic)
}

// scanIKConfig finds "IKCFG_ST" followed by a gzip member in r and
// returns the configuration that member holds.
func scanIKConfig(r io.Reader) (Config, error) {
	const chunk = 1 << 20
	br := bufio.NewReaderSize(r, chunk)
	for {
		b, err := br.Peek(chunk)
		if i := bytes.Index(b, ikcfgStart); i >= 0 {
			br.Discard(i + len(ikcfgStart))
			if h, _ := br.Peek(3); bytes.Equal(h, []byte{0x1f, 0x8b, 8}) {
				return gunzipConfig(br)
			}
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, ErrNoIKConfig
			}
			return nil, fmt.Errorf("decompress kernel: %w", err)
		}
		br.Discard(len(b) - len(ikcfgStart) + 1)
	}
}

func gunzipConfig(r io.Reader) (Config, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("embedded configuration: %w", err)
	}
	zr.Multistream(false)
	data, err := io.ReadAll(io.LimitReader(zr, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("embedded configuration: %w", err)
	}
	return ParseConfig(bytes.NewReader(data))
}

// openRegular opens path for reading only if it is a regular file; the
// open does not block on a FIFO.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	return regfile.Open(path, os.O_RDONLY)
}
