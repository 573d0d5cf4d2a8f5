package wire

import (
	"reflect"
	"strings"
)

// A fast type check of JSON payloads. CheckPayload must reject exactly
// what encoding/json's Unmarshal into the message struct rejects, but
// Unmarshal costs about ten times a syntax check, and ktstr-decode checks
// every payload. typedOK walks a syntactically valid payload once against
// a shape derived from the message struct and answers "certainly
// accepted"; anything it is not sure of (a value of another type, a member
// name that only case-folds to a field, an escape in a name, a float
// literal with an exponent) sends the caller to Unmarshal, which then
// decides and words the error. FuzzTypedOK holds it to that.

// shape is what one Go field type accepts.
type shape struct {
	kind   reflect.Kind
	bits   int
	elem   *shape            // Slice, Map, Pointer
	fields map[string]*shape // Struct: JSON name to shape
	lower  map[string]bool   // Struct: lower-cased JSON names
}

func shapeOf(t reflect.Type) *shape {
	s := &shape{kind: t.Kind()}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		s.bits = t.Bits()
	case reflect.Slice, reflect.Map, reflect.Pointer:
		s.elem = shapeOf(t.Elem())
	case reflect.Struct:
		s.fields, s.lower = map[string]*shape{}, map[string]bool{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			s.fields[name] = shapeOf(f.Type)
			s.lower[strings.ToLower(name)] = true
		}
	}
	return s
}

var jsonShapes = func() map[Type]*shape {
	m := map[Type]*shape{}
	for _, v := range []Message{GuestReady{}, Phase{}, Stimulus{}, WorkerMetrics{}, CgroupMetrics{},
		SchedExit{}, CheckResult{}, KernelSymbols{}, BPFProgStats{}, VMStart{}, MonitorSample{}, VMExit{}, Violation{},
		ProbeEvent{}, ProbeMeta{}} {
		m[v.MsgType()] = shapeOf(reflect.TypeOf(v))
	}
	return m
}()

var (
	intMax = [65]string{8: "127", 16: "32767", 32: "2147483647", 64: "9223372036854775807"}
	intMin = [65]string{8: "128", 16: "32768", 32: "2147483648", 64: "9223372036854775808"}
	uinMax = [65]string{8: "255", 16: "65535", 32: "4294967295", 64: "18446744073709551615"}
)

// digitsAtMost compares two digit strings without leading zeros.
func digitsAtMost(d []byte, limit string) bool {
	return len(d) < len(limit) || len(d) == len(limit) && string(d) <= limit
}

// typedOK reports whether b, a syntactically valid JSON document, is
// certainly accepted by json.Unmarshal into a value of shape sh.
func typedOK(sh *shape, b []byte) bool {
	s := typeScan{b: b}
	s.ws()
	return s.value(sh) && s.ws() == len(b)
}

type typeScan struct {
	b []byte
	i int
}

func (s *typeScan) ws() int {
	s.i = skipWS(s.b, s.i)
	return s.i
}

// value checks the value at s.i against sh (nil: any value) and moves
// past it. It returns false when unsure.
func (s *typeScan) value(sh *shape) bool {
	b := s.b
	if s.i >= len(b) {
		return false
	}
	c := b[s.i]
	if c == 'n' { // null: always accepted, leaves the field as it is
		s.i += 4
		return true
	}
	if sh == nil {
		return s.skip()
	}
	for sh.kind == reflect.Pointer {
		sh = sh.elem
	}
	switch sh.kind {
	case reflect.String:
		if c != '"' {
			return false
		}
		s.i = jsonString(b, s.i)
		return s.i > 0
	case reflect.Bool:
		switch c {
		case 't':
			s.i += 4
		case 'f':
			s.i += 5
		default:
			return false
		}
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if c != '-' && (c < '0' || c > '9') {
			return false
		}
		end := jsonNumber(b, s.i)
		if end < 0 {
			return false
		}
		lit := b[s.i:end]
		s.i = end
		for _, x := range lit {
			if x == '.' || x == 'e' || x == 'E' {
				return false
			}
		}
		signed := sh.kind <= reflect.Int64
		if lit[0] == '-' {
			return signed && digitsAtMost(lit[1:], intMin[sh.bits])
		}
		if signed {
			return digitsAtMost(lit, intMax[sh.bits])
		}
		return digitsAtMost(lit, uinMax[sh.bits])
	case reflect.Float64:
		if c != '-' && (c < '0' || c > '9') {
			return false
		}
		end := jsonNumber(b, s.i)
		if end < 0 || end-s.i > 300 {
			return false
		}
		for _, x := range b[s.i:end] {
			if x == 'e' || x == 'E' {
				return false
			}
		}
		s.i = end
		return true
	case reflect.Slice:
		if c != '[' {
			return false
		}
		return s.members(']', func() bool { return s.value(sh.elem) })
	case reflect.Map:
		if c != '{' {
			return false
		}
		return s.members('}', func() bool {
			if s.i = jsonString(b, s.i); s.i < 0 {
				return false
			}
			s.ws()
			s.i++ // ':'
			s.ws()
			return s.value(sh.elem)
		})
	case reflect.Struct:
		if c != '{' {
			return false
		}
		return s.members('}', func() bool {
			start := s.i + 1
			if s.i = jsonString(b, s.i); s.i < 0 {
				return false
			}
			name := b[start : s.i-1]
			s.ws()
			s.i++ // ':'
			s.ws()
			if f, ok := sh.fields[string(name)]; ok {
				return s.value(f)
			}
			for _, x := range name {
				if x == '\\' || x >= 0x80 {
					return false // an escape or a non-ASCII name may fold to a field
				}
			}
			if sh.lower[strings.ToLower(string(name))] {
				return false // json matches names ignoring case
			}
			return s.value(nil)
		})
	}
	return false
}

// members walks the elements of the array or object opening at s.i,
// calling one for each; close is ']' or '}'.
func (s *typeScan) members(close byte, one func() bool) bool {
	s.i++
	if s.ws(); s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		return true
	}
	for {
		if !one() {
			return false
		}
		if s.ws(); s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case close:
			s.i++
			return true
		case ',':
			s.i++
			s.ws()
		default:
			return false
		}
	}
}

// skip moves past any value (the document is known to be valid).
func (s *typeScan) skip() bool {
	b := s.b
	depth := 0
	for s.i < len(b) {
		switch c := b[s.i]; {
		case c == '"':
			if s.i = jsonString(b, s.i); s.i < 0 {
				return false
			}
		case c == '{' || c == '[':
			depth++
			s.i++
		case c == '}' || c == ']':
			depth--
			s.i++
		case c == 't' || c == 'n':
			s.i += 4
		case c == 'f':
			s.i += 5
		case c == '-' || c >= '0' && c <= '9':
			if s.i = jsonNumber(b, s.i); s.i < 0 {
				return false
			}
		default: // ',', ':', whitespace inside a container
			s.i++
			continue
		}
		if depth == 0 {
			return true
		}
	}
	return false
}
