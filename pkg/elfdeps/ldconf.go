package elfdeps

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxIncludeDepth bounds include recursion in ld.so.conf (cycles, fuzzing).
const maxIncludeDepth = 16

// ParseLdSoConf parses the text of an ld.so.conf file. It returns the
// library directories it names, in order, and the include patterns (glob
// patterns, made absolute against dir, the directory of the file being
// parsed). Comments (#) and hwcap lines are ignored; a directory may carry
// an old-style "=TYPE" suffix, which is dropped; several directories on one
// line may be separated by blanks, colons or commas, as ldconfig accepts.
func ParseLdSoConf(data []byte, dir string) (dirs, includes []string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		switch fields[0] {
		case "include":
			for _, pat := range fields[1:] {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(dir, pat)
				}
				includes = append(includes, pat)
			}
			continue
		case "hwcap":
			continue
		}
		for _, d := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ' ' || r == '\t' || r == ':' || r == ','
		}) {
			if i := strings.IndexByte(d, '='); i >= 0 {
				d = d[:i]
			}
			if d == "" || !filepath.IsAbs(d) {
				continue // ldconfig ignores relative directories
			}
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	return dirs, includes
}

// LoadLdSoConf reads path (normally /etc/ld.so.conf) and, recursively, the
// files its include lines match (each glob's matches in sorted order). A
// missing top-level file yields no directories and no error: the loader
// then uses only its defaults. Duplicate directories are dropped, keeping
// the first occurrence.
func LoadLdSoConf(path string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var load func(p string, depth int) error
	load = func(p string, depth int) error {
		if depth > maxIncludeDepth {
			return fmt.Errorf("ld.so.conf includes nest deeper than %d at %s", maxIncludeDepth, p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) && depth == 0 {
				return nil
			}
			return fmt.Errorf("read %s: %w", p, err)
		}
		dirs, incs := ParseLdSoConf(data, filepath.Dir(p))
		for _, d := range dirs {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
		for _, pat := range incs {
			matches, err := filepath.Glob(pat)
			if err != nil {
				return fmt.Errorf("%s: bad include pattern %q: %w", p, pat, err)
			}
			sort.Strings(matches)
			for _, m := range matches {
				if err := load(m, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := load(path, 0); err != nil {
		return nil, err
	}
	return out, nil
}
