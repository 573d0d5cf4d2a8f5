package initramfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// InitBinaryName is the guest init's file name next to the tools.
const InitBinaryName = "ktstr-init"

// FindInit picks /init's host file: flagValue if set, else $KTSTR_INIT,
// else a ktstr-init next to the running executable (how `make` and
// `make install` lay the tools out).
func FindInit(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if env := os.Getenv("KTSTR_INIT"); env != "" {
		return env, nil
	}
	exe, err := os.Executable()
	if err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		cand := filepath.Join(filepath.Dir(exe), InitBinaryName)
		if st, err := os.Stat(cand); err == nil && st.Mode().IsRegular() {
			return cand, nil
		}
	}
	return "", inputErr("no guest init found (no --init, no $KTSTR_INIT, no %s next to this program): pass --init PATH (a static binary, normally bin/ktstr-init from `make`)", InitBinaryName)
}

// LoadScenario reads --scenario's argument. Today it must name a scenario
// file; a catalog of named scenarios can be put in front of this (a name
// that is not an existing file) without changing callers.
func LoadScenario(arg string) (data []byte, name string, err error) {
	st, err := os.Stat(arg)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", inputErr("--scenario %s: no such file (give the path of a scenario JSON file)", arg)
		}
		return nil, "", inputErr("--scenario %s: %v", arg, unwrapPathErr(err))
	}
	if !st.Mode().IsRegular() {
		return nil, "", inputErr("--scenario %s: not a regular file", arg)
	}
	data, err = os.ReadFile(arg)
	if err != nil {
		return nil, "", inputErr("--scenario %s: %v", arg, unwrapPathErr(err))
	}
	return data, "", nil
}

// ParseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024), for --max-size.
func ParseSize(s string) (int64, error) {
	var n float64
	var unit string
	if _, err := fmt.Sscanf(s, "%g%s", &n, &unit); err != nil {
		if _, err := fmt.Sscanf(s, "%g", &n); err != nil {
			return 0, fmt.Errorf("bad size %q: use a number with an optional K, M, G or T suffix", s)
		}
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MiB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TiB": 1 << 40}[unit]
	if mult == 0 || n < 0 {
		return 0, fmt.Errorf("bad size %q: use a number with an optional K, M, G or T suffix", s)
	}
	return int64(n * mult), nil
}
