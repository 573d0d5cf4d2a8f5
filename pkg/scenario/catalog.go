package scenario

import (
	"embed"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
)

//go:embed scenarios/*.json
var catalogFS embed.FS

// Names lists the catalog's scenario names, sorted.
func Names() []string {
	ents, err := catalogFS.ReadDir("scenarios")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(out)
	return out
}

// CatalogBytes returns the raw JSON of a named catalog scenario.
func CatalogBytes(name string) ([]byte, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("scenario %q is not in the catalog (have: %s)", name, strings.Join(Names(), ", "))
	}
	b, err := catalogFS.ReadFile(path.Join("scenarios", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("scenario %q is not in the catalog (have: %s)", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Lookup returns the named catalog scenario, parsed and validated.
func Lookup(name string) (*Scenario, error) {
	b, err := CatalogBytes(name)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("catalog scenario %q: %w", name, err)
	}
	return s, nil
}

// Load resolves NAME|PATH the way the tools' --scenario flag does: an
// argument containing a '/' or ending in ".json" is a file path, anything
// else a catalog name. It returns the parsed scenario and its raw bytes.
func Load(arg string) (*Scenario, []byte, error) {
	if strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".json") {
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, nil, fmt.Errorf("read scenario file: %w", err)
		}
		s, err := Parse(b)
		if err != nil {
			return nil, nil, fmt.Errorf("scenario %s: %w", arg, err)
		}
		return s, b, nil
	}
	b, err := CatalogBytes(arg)
	if err != nil {
		return nil, nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog scenario %q: %w", arg, err)
	}
	return s, b, nil
}
