package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir returns $env when it is set, else $XDG_CACHE_HOME/ktstr/name, else
// ~/.cache/ktstr/name. The directory is not created.
func Dir(env, name string) (string, error) {
	if d := os.Getenv(env); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "ktstr", name), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set %s or HOME: %w", env, err)
	}
	return filepath.Join(home, ".cache", "ktstr", name), nil
}
