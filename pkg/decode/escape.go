package decode

import (
	"unicode/utf8"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. It returns ok=false
// (and dst unchanged) when s is not valid UTF-8, so callers can fall back
// to base64 instead of silently replacing bytes. One pass, no allocation
// beyond growing dst.
func appendJSONString(dst []byte, s []byte) ([]byte, bool) {
	orig := len(dst)
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = wire.JSONPlainRun(s, i); i >= len(s) {
			break
		}
		c := s[i]
		if c >= 0x80 {
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				return dst[:orig], false
			}
			i += n
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}

// appendJSONStr is appendJSONString for Go strings, which the callers
// know to hold valid UTF-8 or accept replacement for.
func appendJSONStr(dst []byte, s string) []byte {
	out, ok := appendJSONString(dst, []byte(s))
	if !ok {
		out, _ = appendJSONString(dst, []byte(toValidUTF8(s)))
	}
	return out
}

func toValidUTF8(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// appendEscaped appends s for a one-line text record: backslash, control
// characters and invalid UTF-8 bytes are written as Go-style escapes
// (\\, \n, \t, \r, \xNN), so the result is valid UTF-8 without newlines
// and can be read back unambiguously.
func appendEscaped(dst []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '\\' {
			i++
			continue
		}
		if c >= 0x80 {
			r, n := utf8.DecodeRune(s[i:])
			if !(r == utf8.RuneError && n == 1) && r != '\u2028' && r != '\u2029' && r != '\u0085' {
				i += n
				continue
			}
			if n > 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u`...)
				dst = append(dst, hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
				i += n
				start = i
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}
