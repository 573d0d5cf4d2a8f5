package report

// This file reads the run directory layout that ktstr-gauntlet writes. It
// is a minimal stand-in for pkg/runrecord, which owns the layout: when that
// package is on main, RunRecord and VariantMeta become its types.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File names inside a run directory.
const (
	RunFile     = "run.json"
	MetaFile    = "meta.json"
	StreamFile  = "stream.ktstr"
	VerdictFile = "verdict.json"
	ConsoleFile = "console.txt"
)

// maxJSONFile bounds run.json and meta.json: they are a few KiB; a larger
// one is not ours.
const maxJSONFile = 4 << 20

// maxVariants bounds how many variants one run directory may hold.
const maxVariants = 100000

// maxDepth bounds how deep the variant walk goes (sched/scenario/preset/
// kernel/repN is 5).
const maxDepth = 8

// RunRecord is run.json: what a gauntlet run was.
type RunRecord struct {
	Suite        string   `json:"suite"`
	SuiteSHA256  string   `json:"suite_sha256"`
	Started      string   `json:"started"`
	Ended        string   `json:"ended"`
	Host         string   `json:"host"`
	KtstrVersion string   `json:"ktstr_version"`
	Engine       string   `json:"engine"`
	Variants     []string `json:"variants"`
}

// VariantMeta is RUNDIR/<variant>/meta.json: what one variant ran and how
// ktstr-gauntlet saw it end.
type VariantMeta struct {
	Variant         string   `json:"variant"`
	Scheduler       string   `json:"scheduler"`
	SchedulerArgs   []string `json:"scheduler_args"`
	SchedulerSHA256 string   `json:"scheduler_sha256"`
	Scenario        string   `json:"scenario"`
	Preset          string   `json:"preset"`
	Topology        string   `json:"topology"`
	Kernel          string   `json:"kernel"`
	KernelVersion   string   `json:"kernel_version"`
	KernelSHA256    string   `json:"kernel_sha256"`
	Rep             int      `json:"rep"`
	KtstrVersion    string   `json:"ktstr_version"`
	Host            string   `json:"host"`
	Started         string   `json:"started"`
	Ended           string   `json:"ended"`
	WallS           float64  `json:"wall_s"`
	ExitCode        int      `json:"exit_code"`
	Verdict         string   `json:"verdict"` // pass, fail, no_verdict, error
	Reason          string   `json:"reason"`
}

// The verdict words of meta.json.
const (
	MetaPass      = "pass"
	MetaFail      = "fail"
	MetaNoVerdict = "no_verdict"
	MetaError     = "error"
)

// ParseRunRecord decodes run.json. Unknown fields are ignored (a newer
// gauntlet may add some); variant names are checked as CheckVariantName
// does.
func ParseRunRecord(b []byte) (*RunRecord, error) {
	var r RunRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", RunFile, err)
	}
	for _, v := range r.Variants {
		if err := CheckVariantName(v); err != nil {
			return nil, fmt.Errorf("parse %s: %w", RunFile, err)
		}
	}
	return &r, nil
}

// ParseVariantMeta decodes meta.json and checks its verdict word.
func ParseVariantMeta(b []byte) (*VariantMeta, error) {
	var m VariantMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", MetaFile, err)
	}
	switch m.Verdict {
	case MetaPass, MetaFail, MetaNoVerdict, MetaError:
	default:
		return nil, fmt.Errorf("parse %s: verdict %q is not pass, fail, no_verdict or error", MetaFile, m.Verdict)
	}
	return &m, nil
}

// CheckVariantName reports whether name is a variant name that stays
// inside its run directory: slash-separated, non-empty components, none
// of them "." or "..", no backslash or NUL, at most maxDepth deep.
func CheckVariantName(name string) error {
	if name == "" {
		return errors.New("empty variant name")
	}
	if len(name) > 1024 || strings.ContainsAny(name, "\\\x00") {
		return fmt.Errorf("variant name %.80q: not a relative path of plain components", name)
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxDepth {
		return fmt.Errorf("variant name %.80q: more than %d components", name, maxDepth)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return fmt.Errorf("variant name %.80q: not a relative path of plain components", name)
		}
	}
	return nil
}

// readSmall reads a file of at most maxJSONFile bytes.
func readSmall(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJSONFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxJSONFile {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxJSONFile)
	}
	return b, nil
}

// ReadRunRecord reads RUNDIR/run.json; os.ErrNotExist when it is absent.
func ReadRunRecord(dir string) (*RunRecord, error) {
	b, err := readSmall(filepath.Join(dir, RunFile))
	if err != nil {
		return nil, err
	}
	return ParseRunRecord(b)
}

// ReadVariantMeta reads RUNDIR/<variant>/meta.json.
func ReadVariantMeta(dir, variant string) (*VariantMeta, error) {
	b, err := readSmall(filepath.Join(dir, filepath.FromSlash(variant), MetaFile))
	if err != nil {
		return nil, err
	}
	return ParseVariantMeta(b)
}

// FindVariants lists the variant directories under dir: every directory
// (at most maxDepth deep, symbolic links not followed) holding a meta.json
// or a stream.ktstr, as slash-separated names relative to dir, sorted.
func FindVariants(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			return nil // an unreadable subdirectory: its variants show as missing
		}
		n := d.Name()
		isFile := n == MetaFile || n == StreamFile // whatever its type: a directory in its place is reported, not skipped
		if d.IsDir() && !isFile {
			rel, _ := filepath.Rel(dir, path)
			if rel != "." && strings.Count(filepath.ToSlash(rel), "/") >= maxDepth {
				return fs.SkipDir
			}
			return nil
		}
		if isFile {
			rel, _ := filepath.Rel(dir, filepath.Dir(path))
			if rel == "." {
				return nil
			}
			name := filepath.ToSlash(rel)
			if len(out) == 0 || out[len(out)-1] != name {
				out = append(out, name)
			}
			if len(out) > maxVariants {
				return fmt.Errorf("more than %d variants", maxVariants)
			}
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list variants in %s: %w", dir, err)
	}
	sort.Strings(out)
	return dedupSorted(out), nil
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// openRegular opens path for reading only when it is a regular file (after
// symbolic links): a FIFO or device in a run directory would block or
// never end.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, st.Mode().Type())
	}
	return os.Open(path)
}
