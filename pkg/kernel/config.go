package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxConfigSize bounds a configuration file read into memory. A real
// x86_64 allmodconfig is about 300 KiB.
const MaxConfigSize = 8 << 20

// ErrNotConfig is returned for input that is not a kernel configuration.
var ErrNotConfig = errors.New("not a kernel configuration")

// Config is a parsed kernel configuration: symbol (without CONFIG_) to
// value ("y", "m", a number or a quoted string). A symbol that is absent
// or "is not set" is not in the map.
type Config map[string]string

// Get returns sym's value ("" when unset); sym may carry the CONFIG_ prefix.
func (c Config) Get(sym string) string {
	return c[strings.TrimPrefix(sym, "CONFIG_")]
}

// ParseConfig reads a .config. Comments other than "# CONFIG_X is not
// set" and blank lines are skipped; a later assignment wins (as in
// Kconfig). Input that has no CONFIG_ line at all, has a line that is
// neither a comment nor an assignment, or exceeds MaxConfigSize is
// rejected with ErrNotConfig.
func ParseConfig(r io.Reader) (Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotConfig, MaxConfigSize)
	}
	cfg := Config{}
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxConfigSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			rest := strings.TrimSpace(line[1:])
			if sym, ok := strings.CutSuffix(rest, " is not set"); ok && strings.HasPrefix(sym, "CONFIG_") && validSym(sym[7:]) {
				delete(cfg, sym[7:])
				seen = true
			}
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(name, "CONFIG_") || !validSym(name[7:]) {
			return nil, fmt.Errorf("%w: line %d: %.60q", ErrNotConfig, n, line)
		}
		if val == "n" {
			delete(cfg, name[7:])
		} else {
			cfg[name[7:]] = val
		}
		seen = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotConfig, err)
	}
	if !seen {
		return nil, fmt.Errorf("%w: no CONFIG_ line", ErrNotConfig)
	}
	return cfg, nil
}

func validSym(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
