package runrecord

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// maxParts is the most parts a variant name has
// (sched/scenario/preset/kernel/repN).
const maxParts = 5

// FindVariants lists the variant directories under rundir by walking it,
// for when run.json is missing, cut off or wrong: every directory at most
// maxParts deep (symbolic links not followed) holding a meta.json or a
// stream.ktstr (of any type: a directory in its place is listed, not
// skipped), as slash-separated names relative to rundir, sorted, each once.
// The names stay inside rundir by construction but need not be valid
// variant names (ParseVariant): the caller decides what to say of one that
// is not. An unreadable subdirectory is skipped (its variants show as
// missing); more than MaxVariants names is an error.
func FindVariants(rundir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(rundir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == rundir {
				return err
			}
			return nil
		}
		n := d.Name()
		isFile := n == MetaFile || n == StreamFile
		if d.IsDir() && !isFile {
			rel, _ := filepath.Rel(rundir, path)
			if rel != "." && strings.Count(filepath.ToSlash(rel), "/")+1 > maxParts {
				return fs.SkipDir
			}
			return nil
		}
		if !isFile {
			return nil
		}
		rel, _ := filepath.Rel(rundir, filepath.Dir(path))
		if rel == "." {
			return nil
		}
		if name := filepath.ToSlash(rel); len(out) == 0 || out[len(out)-1] != name {
			out = append(out, name)
		}
		if len(out) > MaxVariants {
			return fmt.Errorf("more than %d variants", MaxVariants)
		}
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list variants in %s: %w", rundir, err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
