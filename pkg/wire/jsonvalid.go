package wire

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// MaxJSONDepth is the deepest nesting of arrays and objects a JSON payload
// may have; it matches encoding/json's limit, so ValidJSON accepts exactly
// what json.Valid accepts, less documents with invalid UTF-8.
const MaxJSONDepth = 10000

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// JSONPlainRun returns the index of the first byte at or after i that a
// JSON string scan (or an escaper, as pkg/decode's) must stop at: a control
// character, a quote, a backslash or a non-ASCII byte; len(b) if none.
func JSONPlainRun(b []byte, i int) int { return plainRun(b, i) }

// plainRun returns the index of the first byte at or after i that a JSON
// string scan must stop at (see strSpecial), or len(b). It tests eight
// bytes at a time: a byte is flagged when it is below 0x20, a quote, a
// backslash, or 0x80 and above. Borrows can flag a clean byte only above a
// byte that is itself flagged, so the lowest flag is always the first
// special byte.
func plainRun(b []byte, i int) int {
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		m := ((x - 0x20*ones) | ((x ^ '"'*ones) - ones) | ((x ^ '\\'*ones) - ones) | x) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && !strSpecial[b[i]] {
		i++
	}
	return i
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

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// jsonString scans a string whose opening quote is at b[i]. It returns
// the index after the closing quote, or the negated offset of the fault
// minus one.
func jsonString(b []byte, i int) int {
	i++
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			return -i - 1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -(i + 1) - 1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := 2; j < 6; j++ {
					if i+j >= len(b) || !isHex(b[i+j]) {
						return -(i + j) - 1
					}
				}
				i += 6
			default:
				return -(i + 1) - 1
			}
		case c < 0x20:
			return -i - 1
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return -i - 1
			}
			i += n
		}
	}
}

// jsonNumber scans a number starting at b[i]; same return convention.
func jsonNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -i - 1
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	} else {
		return -i - 1
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == s {
			return -i - 1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == s {
			return -i - 1
		}
	}
	return i
}

func jsonLiteral(b []byte, i int, lit string) int {
	for j := 0; j < len(lit); j++ {
		if i+j >= len(b) || b[i+j] != lit[j] {
			return -(i + j) - 1
		}
	}
	return i + len(lit)
}

// ValidJSON reports whether b is one RFC 8259 JSON value (surrounded by
// optional whitespace) whose strings are valid UTF-8 and whose arrays and
// objects nest at most MaxJSONDepth deep. It returns -1 when b is valid,
// else the offset of the first offending byte (len(b) when the input ends
// early); tooDeep says the fault is the nesting limit, at the bracket that
// opens level MaxJSONDepth+1. It exists because ktstr-decode --json embeds
// JSON payloads verbatim after validating them, and encoding/json's
// validator is several times slower. It is iterative (an explicit stack
// of open containers) and does not allocate below 64 levels of nesting.
func ValidJSON(b []byte) (off int, tooDeep bool) {
	off = validJSON(b)
	return off, off >= 0 && off < len(b) && (b[off] == '[' || b[off] == '{') && depthAt(b, off) >= MaxJSONDepth
}

// depthAt counts the containers open before b[off] in a document that
// validJSON accepted up to off.
func depthAt(b []byte, off int) int {
	depth, inStr := 0, false
	for i := 0; i < off; i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		}
	}
	return depth
}

func validJSON(b []byte) int {
	var stackBuf [64]byte
	stack := stackBuf[:0]
	i := skipWS(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return i
		}
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) >= MaxJSONDepth {
				return i
			}
			stack = append(stack, c)
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']'
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = objectKey(b, i); i < 0 {
					return -i - 1
				}
			}
			continue
		case '"':
			i = jsonString(b, i)
		case 't':
			i = jsonLiteral(b, i, "true")
		case 'f':
			i = jsonLiteral(b, i, "false")
		case 'n':
			i = jsonLiteral(b, i, "null")
		default:
			if c != '-' && (c < '0' || c > '9') {
				return i
			}
			i = jsonNumber(b, i)
		}
		if i < 0 {
			return -i - 1
		}
		// After a value: close containers or move to the next element.
		for {
			i = skipWS(b, i)
			if len(stack) == 0 {
				if i != len(b) {
					return i
				}
				return -1
			}
			if i >= len(b) {
				return i
			}
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return i
			}
			i = skipWS(b, i+1)
			if top == '{' {
				if i = objectKey(b, i); i < 0 {
					return -i - 1
				}
			}
			break
		}
	}
}

// objectKey scans `"key" :` and the whitespace after it, starting at i.
func objectKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -i - 1
	}
	if i = jsonString(b, i); i < 0 {
		return i
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return -i - 1
	}
	return skipWS(b, i+1)
}
