package initramfs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/scenario"
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

// LoadScenario reads --scenario's argument: a scenario file, or, when no
// such file exists and the argument has no '/' and no ".json" suffix, a
// named scenario of the catalog in pkg/scenario (its name is returned for
// the run configuration). Either way the scenario is validated here, so a
// bad one fails on the host rather than in the guest.
func LoadScenario(arg string) (data []byte, name string, err error) {
	st, err := os.Stat(arg)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if !strings.ContainsRune(arg, '/') && !strings.HasSuffix(arg, ".json") {
				b, cerr := scenario.CatalogBytes(arg)
				if cerr != nil {
					return nil, "", inputErr("--scenario %s: no such file, and %v", arg, cerr)
				}
				return b, arg, nil
			}
			return nil, "", inputErr("--scenario %s: no such file (give a scenario JSON file or a catalog name: %s)", arg, strings.Join(scenario.Names(), ", "))
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
	if _, err := scenario.Parse(data); err != nil {
		return nil, "", inputErr("--scenario %s: %v (see man ktstr-scenario)", arg, err)
	}
	return data, "", nil
}

// ParseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024), for --max-size.
func ParseSize(s string) (int64, error) {
	bad := fmt.Errorf("bad size %q: use a number with an optional K, M, G or T suffix", s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || i == 0 {
		return 0, bad
	}
	mult, ok := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MiB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TiB": 1 << 40}[s[i:]]
	if !ok || n*mult >= math.MaxInt64 {
		return 0, bad
	}
	return int64(n * mult), nil
}
