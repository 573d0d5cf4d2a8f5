package initramfs

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression is how an archive part is compressed.
type Compression string

const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	None Compression = "none"
	// LZ4 is the LZ4 legacy frame format, the only LZ4 framing the
	// kernel's initramfs unpacker reads (CONFIG_RD_LZ4).
	LZ4 Compression = "lz4"
)

// DefaultCompression is the compression chosen by measured guest boot
// time: for a 37 MB archive the kernel's unpack took 80 ms uncompressed,
// 135 ms lz4, 345 ms zstd and 409 ms gzip (QEMU TCG -icount, i.e. guest
// instructions; see the README's ktstr-mkinitramfs Performance section).
// An uncompressed blob costs the kernel only a copy, needs no
// CONFIG_RD_* option and is the fastest to build; it takes ~2.7x the disk
// space of zstd in the cache.
const DefaultCompression = None

// Compressions lists the accepted values, for flag help.
var Compressions = []Compression{Zstd, LZ4, Gzip, None}

// ParseCompression validates a --compress value.
func ParseCompression(s string) (Compression, error) {
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown compression %q: use one of %v", s, Compressions)
}

// Ext is the file-name extension of a blob.
func (c Compression) Ext() string {
	switch c {
	case Zstd:
		return ".cpio.zst"
	case Gzip:
		return ".cpio.gz"
	case LZ4:
		return ".cpio.lz4"
	}
	return ".cpio"
}

// compressor returns a writer compressing into w with fixed settings, so
// the same archive always gives the same bytes.
func (c Compression) compressor(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		// Level "default" (zstd -3), 8 MiB window (well within what the
		// kernel's unzstd accepts), checksum on. The streaming encoder's
		// output does not depend on concurrency or write sizes (tested).
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(8<<20), zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
	case Gzip:
		// Level 6; header with no name and mtime 0.
		return gzip.NewWriterLevel(w, 6)
	case LZ4:
		// Legacy frame: magic 0x184C2102, then 8 MiB blocks each led by
		// its compressed length; blocks are independent, so compressing
		// them concurrently does not change the bytes.
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.LegacyOption(true), lz4.CompressionLevelOption(lz4.Fast)); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return zw, nil
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
