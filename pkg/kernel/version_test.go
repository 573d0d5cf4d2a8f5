package kernel

import (
	"bytes"
	"os"
	"testing"
)

func TestImageVersion(t *testing.T) {
	hdr := func(ptr uint16, s string) []byte {
		b := make([]byte, 0x400)
		copy(b[0x202:], "HdrS")
		b[0x20E], b[0x20F] = byte(ptr), byte(ptr>>8)
		if 0x200+int(ptr) < len(b) {
			copy(b[0x200+int(ptr):], s)
		}
		return b
	}
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{hdr(0x100, "6.12.117 (root@vm) #1 SMP\x00junk"), "6.12.117"},
		{hdr(0x100, "6.1.0-rc1\x00"), "6.1.0-rc1"},
		{hdr(0, "x"), ""},
		{hdr(0x1f0, "7.0"), "7.0"}, // runs to the end of the file
		{hdr(0xffff, ""), ""},      // points past the end
		{hdr(0x100, "\x01bad"), ""},
		{make([]byte, 0x400), ""},
		{[]byte("short"), ""},
	} {
		got, err := imageVersion(bytes.NewReader(c.b))
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("got %q %v, want %q", got, err, c.want)
		}
	}
	if k := os.Getenv("KTSTR_KERNEL"); k != "" {
		v, err := ImageVersion(k)
		if err != nil || v == "" {
			t.Errorf("%s: %q %v", k, v, err)
		}
		t.Logf("%s: %s", k, v)
	}
}

func FuzzImageVersion(f *testing.F) {
	f.Add(make([]byte, 0x300))
	f.Fuzz(func(t *testing.T, b []byte) {
		imageVersion(bytes.NewReader(b))
	})
}
