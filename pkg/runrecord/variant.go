package runrecord

import (
	"fmt"
	"strconv"
	"strings"
)

// Variant is a variant name's parts: sched/scenario/preset[/kernel][/repN].
type Variant struct {
	Scheduler, Scenario, Preset string
	Kernel                      string // "" when the suite has one kernel
	Rep                         int    // 0 when the suite has one repetition; else 1-based
}

// String is the variant's name.
func (v Variant) String() string {
	s := v.Scheduler + "/" + v.Scenario + "/" + v.Preset
	if v.Kernel != "" {
		s += "/" + v.Kernel
	}
	if v.Rep > 0 {
		s += "/rep" + strconv.Itoa(v.Rep)
	}
	return s
}

// MaxNameLen bounds a variant name (and each part of it).
const MaxNameLen = 200

// ValidPart reports whether s may be one part of a variant name: 1 to 64
// of [A-Za-z0-9._+-], not starting with '.' or '-', and not of the form
// repN (that is the repetition's part).
func ValidPart(s string) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	if len(s) > maxPartLen {
		return fmt.Errorf("name %.20q... longer than %d bytes", s, maxPartLen)
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("name %q starts with %q", s, s[0])
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !partByte(c) {
			return fmt.Errorf("name %q: character %q not allowed (use letters, digits, . _ + -)", s, c)
		}
	}
	if isRep(s) {
		return fmt.Errorf("name %q looks like a repetition (repN)", s)
	}
	return nil
}

// partByte reports whether c may appear in a name part.
func partByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-'
}

// maxPartLen bounds one part of a variant name.
const maxPartLen = 64

// MakePart turns any text (a kernel's release, a file name, a version)
// into a valid name part (ValidPart): each byte not allowed becomes '_',
// the result is cut to 64 bytes, and one that is empty, starts with '.' or
// '-', or reads as a repetition (repN) gets prefix in front. prefix must
// be a valid part's start, such as "k".
func MakePart(s, prefix string) string {
	b := []byte(s)
	for i, c := range b {
		if !partByte(c) {
			b[i] = '_'
		}
	}
	if len(b) > maxPartLen {
		b = b[:maxPartLen]
	}
	if len(b) == 0 || b[0] == '.' || b[0] == '-' || isRep(string(b)) {
		b = append([]byte(prefix), b...)
		if len(b) > maxPartLen {
			b = b[:maxPartLen]
		}
	}
	return string(b)
}

func isRep(s string) bool {
	n, ok := strings.CutPrefix(s, "rep")
	if !ok || n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// ParseVariant reads a variant name. Every part must satisfy ValidPart, so
// a name is always a safe relative path (no "..", no absolute path).
func ParseVariant(name string) (Variant, error) {
	if len(name) > MaxNameLen {
		return Variant{}, fmt.Errorf("variant name longer than %d bytes", MaxNameLen)
	}
	parts := strings.Split(name, "/")
	if len(parts) < 3 || len(parts) > maxParts {
		return Variant{}, fmt.Errorf("variant %q: want sched/scenario/preset[/kernel][/repN]", name)
	}
	var v Variant
	if last := parts[len(parts)-1]; len(parts) > 3 && isRep(last) {
		n, err := strconv.Atoi(last[3:])
		if err != nil || n < 1 || n > 1000000 || last[3] == '0' {
			return Variant{}, fmt.Errorf("variant %q: bad repetition %q", name, last)
		}
		v.Rep = n
		parts = parts[:len(parts)-1]
	}
	if len(parts) == maxParts {
		return Variant{}, fmt.Errorf("variant %q: want sched/scenario/preset[/kernel][/repN]", name)
	}
	for _, p := range parts {
		if err := ValidPart(p); err != nil {
			return Variant{}, fmt.Errorf("variant %q: %w", name, err)
		}
	}
	v.Scheduler, v.Scenario, v.Preset = parts[0], parts[1], parts[2]
	if len(parts) == 4 {
		v.Kernel = parts[3]
	}
	return v, nil
}
