package probe

import (
	"fmt"
	"strings"
)

// CmdlineKey is the kernel command-line key that turns the probes on:
// ktstr.probe=1 attaches the built-in set, ktstr.probe=FUNC,FUNC,... adds
// generic probes on those kernel functions.
const CmdlineKey = "ktstr.probe"

// MaxExtra bounds the functions a command line may add.
const MaxExtra = 32

// MaxValue bounds the length of the value FormatList writes: the whole
// kernel command line is at most 2048 bytes on x86.
const MaxValue = 512

// ValidFunc reports whether s can be a kernel function name.
func ValidFunc(s string) bool {
	if s == "" || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParseList reads a ktstr.probe value: "1" (the built-in probes only) or
// a comma-separated list of kernel functions to probe as well.
func ParseList(v string) ([]string, error) {
	if v == "1" {
		return nil, nil
	}
	if v == "" {
		return nil, fmt.Errorf("empty value: want 1 or a comma-separated list of kernel functions")
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		if f == "1" {
			continue
		}
		if !ValidFunc(f) {
			return nil, fmt.Errorf("%q is not a kernel function name", f)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) > MaxExtra {
		return nil, fmt.Errorf("%d functions, at most %d", len(out), MaxExtra)
	}
	return out, nil
}

// FormatList is the ktstr.probe word for funcs: "ktstr.probe=1" for none.
// Invalid names and those beyond MaxExtra are left out.
func FormatList(funcs []string) string {
	var ok []string
	seen := map[string]bool{}
	n := 0
	for _, f := range funcs {
		if ValidFunc(f) && !seen[f] && len(ok) < MaxExtra && n+len(f)+1 <= MaxValue {
			n += len(f) + 1
			seen[f] = true
			ok = append(ok, f)
		}
	}
	if len(ok) == 0 {
		return CmdlineKey + "=1"
	}
	return CmdlineKey + "=" + strings.Join(ok, ",")
}
