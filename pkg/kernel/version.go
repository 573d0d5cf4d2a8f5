package kernel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// ImageVersion reads the kernel release ("6.12.117") from a bzImage's
// setup header: the kernel_version field (offset 0x20E, boot protocol
// 2.00+) points, relative to 0x200, at a NUL-terminated string such as
// "6.12.117 (user@host) #1 SMP ..."; its first word is the release.
// Every offset is bounds-checked: the file is untrusted.
func ImageVersion(path string) (string, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return imageVersion(f)
}

func imageVersion(r io.ReaderAt) (string, error) {
	var hdr [0x210]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return "", fmt.Errorf("bzImage setup header: %w", err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("not a bzImage (no HdrS signature)")
	}
	ptr := binary.LittleEndian.Uint16(hdr[0x20E:])
	if ptr == 0 {
		return "", fmt.Errorf("bzImage has no kernel_version string")
	}
	var buf [256]byte
	n, err := r.ReadAt(buf[:], 0x200+int64(ptr))
	if n == 0 {
		return "", fmt.Errorf("bzImage kernel_version string: %w", err)
	}
	s := buf[:n]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if i := bytes.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("bzImage kernel_version is not printable")
		}
	}
	if len(s) == 0 {
		return "", fmt.Errorf("bzImage kernel_version string is empty")
	}
	return string(s), nil
}
