package decode

import (
	"unicode/utf8"
)

// maxJSONDepth matches encoding/json's nesting limit, so validJSON accepts
// exactly what json.Valid accepts, less documents with invalid UTF-8.
const maxJSONDepth = 10000

// validJSON reports whether b is one RFC 8259 JSON value (surrounded by
// optional whitespace) whose strings are valid UTF-8. It returns -1 when
// b is valid, else the offset of the first offending byte (len(b) when
// the input ends early). It does not allocate. It exists because
// ktstr-decode --json embeds JSON payloads verbatim after validating them,
// and encoding/json's validator is several times slower.
func validJSON(b []byte) int {
	v := jsonValidator{b: b}
	v.ws()
	if !v.value(0) {
		return v.i
	}
	v.ws()
	if v.i != len(b) {
		return v.i
	}
	return -1
}

type jsonValidator struct {
	b []byte
	i int
}

func (v *jsonValidator) ws() {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *jsonValidator) value(depth int) bool {
	if v.i >= len(v.b) {
		return false
	}
	switch c := v.b[v.i]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return false
		}
		v.i++
		v.ws()
		if v.i < len(v.b) && v.b[v.i] == '}' {
			v.i++
			return true
		}
		for {
			if v.i >= len(v.b) || v.b[v.i] != '"' || !v.str() {
				return false
			}
			v.ws()
			if v.i >= len(v.b) || v.b[v.i] != ':' {
				return false
			}
			v.i++
			v.ws()
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			if v.i >= len(v.b) {
				return false
			}
			switch v.b[v.i] {
			case ',':
				v.i++
				v.ws()
			case '}':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '[':
		if depth >= maxJSONDepth {
			return false
		}
		v.i++
		v.ws()
		if v.i < len(v.b) && v.b[v.i] == ']' {
			v.i++
			return true
		}
		for {
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			if v.i >= len(v.b) {
				return false
			}
			switch v.b[v.i] {
			case ',':
				v.i++
				v.ws()
			case ']':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return v.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return v.num()
	case c == 't':
		return v.lit("true")
	case c == 'f':
		return v.lit("false")
	case c == 'n':
		return v.lit("null")
	}
	return false
}

func (v *jsonValidator) lit(s string) bool {
	if len(v.b)-v.i < len(s) {
		for j := 0; v.i < len(v.b) && v.b[v.i] == s[j]; j++ {
			v.i++
		}
		return false
	}
	for j := 0; j < len(s); j++ {
		if v.b[v.i] != s[j] {
			return false
		}
		v.i++
	}
	return true
}

func (v *jsonValidator) digits() bool {
	start := v.i
	for v.i < len(v.b) && v.b[v.i] >= '0' && v.b[v.i] <= '9' {
		v.i++
	}
	return v.i > start
}

func (v *jsonValidator) num() bool {
	if v.b[v.i] == '-' {
		v.i++
	}
	if v.i >= len(v.b) {
		return false
	}
	if v.b[v.i] == '0' {
		v.i++
	} else if !v.digits() {
		return false
	}
	if v.i < len(v.b) && v.b[v.i] == '.' {
		v.i++
		if !v.digits() {
			return false
		}
	}
	if v.i < len(v.b) && (v.b[v.i] == 'e' || v.b[v.i] == 'E') {
		v.i++
		if v.i < len(v.b) && (v.b[v.i] == '+' || v.b[v.i] == '-') {
			v.i++
		}
		if !v.digits() {
			return false
		}
	}
	return true
}

// strSpecial marks the bytes a JSON string scan must stop at: control
// characters, the quote, the backslash and every non-ASCII byte.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return
}()

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// str scans a string starting at its opening quote.
func (v *jsonValidator) str() bool {
	b := v.b
	i := v.i + 1
	for {
		for i < len(b) && !strSpecial[b[i]] {
			i++
		}
		if i >= len(b) {
			v.i = i
			return false
		}
		switch c := b[i]; {
		case c == '"':
			v.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(b) {
				v.i = i + 1
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := 2; j < 6; j++ {
					if i+j >= len(b) || !isHex(b[i+j]) {
						v.i = i + j
						return false
					}
				}
				i += 6
			default:
				v.i = i + 1
				return false
			}
		case c < 0x20:
			v.i = i
			return false
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				v.i = i
				return false
			}
			i += n
		}
	}
}
