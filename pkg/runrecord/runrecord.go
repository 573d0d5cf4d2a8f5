package runrecord

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/regfile"
)

// File names inside a run directory.
const (
	RunFile     = "run.json"
	MetaFile    = "meta.json"
	StreamFile  = "stream.ktstr"
	VerdictFile = "verdict.json"
	ConsoleFile = "console.txt"
)

// Engines.
const (
	EngineMake     = "make"
	EngineParallel = "parallel"
	EngineSlurm    = "slurm"
)

// Verdicts in meta.json.
const (
	Pass      = "pass"
	Fail      = "fail"
	NoVerdict = "no_verdict"
	Error     = "error" // ktstr-run could not run the variant (a tool failed, bad arguments)
)

// MaxVariants bounds how many variants one run holds: a suite's expansion
// (ktstr-gauntlet) and a run directory's listing (FindVariants).
const MaxVariants = 100000

// Size bounds for the record files (a run directory may come from
// anywhere): meta.json is a few hundred bytes; run.json is bounded by what
// ktstr-gauntlet can write, MaxVariants names of at most MaxNameLen bytes
// (each quoted, indented and comma-separated) plus the run's own fields.
const (
	MaxMetaSize = 4 << 20
	MaxRunSize  = 1<<20 + MaxVariants*(MaxNameLen+8)
)

// Run is RUNDIR/run.json.
type Run struct {
	Suite        string     `json:"suite"`        // the suite file's path as given
	SuiteSHA256  string     `json:"suite_sha256"` // of its bytes
	Started      time.Time  `json:"started"`
	Ended        *time.Time `json:"ended,omitempty"` // nil while the run is going on (or was cut off)
	Host         string     `json:"host"`
	KtstrVersion string     `json:"ktstr_version"`
	Engine       string     `json:"engine"`   // make, parallel or slurm
	Variants     []string   `json:"variants"` // in expansion order
}

// Meta is RUNDIR/VARIANT/meta.json.
type Meta struct {
	Variant         string    `json:"variant"`
	Scheduler       string    `json:"scheduler"` // its name in the suite ("eevdf": none)
	SchedulerArgs   []string  `json:"scheduler_args"`
	SchedulerSHA256 string    `json:"scheduler_sha256"` // "" for EEVDF
	Scenario        string    `json:"scenario"`
	Preset          string    `json:"preset"`
	Topology        string    `json:"topology"` // NnNlNcNt
	Kernel          string    `json:"kernel"`   // the bzImage's path
	KernelVersion   string    `json:"kernel_version"`
	KernelSHA256    string    `json:"kernel_sha256"`
	Rep             int       `json:"rep"` // 1-based
	KtstrVersion    string    `json:"ktstr_version"`
	Host            string    `json:"host"`
	Started         time.Time `json:"started"`
	Ended           time.Time `json:"ended"`
	WallS           float64   `json:"wall_s"`
	ExitCode        int       `json:"exit_code"` // ktstr-run's (man/ktstr-run.1)
	Verdict         string    `json:"verdict"`   // pass, fail, no_verdict or error
	Reason          string    `json:"reason"`    // one line
}

// VerdictOf maps ktstr-run's exit code to a verdict.
func VerdictOf(exitCode int) string {
	switch exitCode {
	case 0:
		return Pass
	case 1:
		return Fail
	case 3:
		return NoVerdict
	}
	return Error
}

// Validate checks the fields a reader relies on.
func (r *Run) Validate() error {
	if len(r.Variants) > MaxVariants {
		return fmt.Errorf("run.json: %d variants, more than %d", len(r.Variants), MaxVariants)
	}
	if r.Started.IsZero() {
		return errors.New("run.json: no started time")
	}
	switch r.Engine {
	case EngineMake, EngineParallel, EngineSlurm:
	default:
		return fmt.Errorf("run.json: unknown engine %q", r.Engine)
	}
	seen := map[string]bool{}
	for _, v := range r.Variants {
		if _, err := ParseVariant(v); err != nil {
			return fmt.Errorf("run.json: %w", err)
		}
		if seen[v] {
			return fmt.Errorf("run.json: variant %s listed twice", v)
		}
		seen[v] = true
	}
	return nil
}

// Validate checks the fields a reader relies on.
func (m *Meta) Validate() error {
	if _, err := ParseVariant(m.Variant); err != nil {
		return fmt.Errorf("meta.json: %w", err)
	}
	switch m.Verdict {
	case Pass, Fail, NoVerdict, Error:
	default:
		return fmt.Errorf("meta.json of %s: unknown verdict %q", m.Variant, m.Verdict)
	}
	if m.WallS < 0 {
		return fmt.Errorf("meta.json of %s: negative wall_s", m.Variant)
	}
	if strings.ContainsAny(m.Reason, "\n\r") {
		return fmt.Errorf("meta.json of %s: reason is not one line", m.Variant)
	}
	return nil
}

// ParseRun decodes and validates run.json's bytes.
func ParseRun(b []byte) (*Run, error) {
	var r Run
	if err := decodeStrict(b, &r); err != nil {
		return nil, fmt.Errorf("run.json: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParseMeta decodes and validates meta.json's bytes.
func ParseMeta(b []byte) (*Meta, error) {
	var m Meta
	if err := decodeStrict(b, &m); err != nil {
		return nil, fmt.Errorf("meta.json: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// decodeStrict decodes exactly one JSON object; unknown fields are allowed
// (a newer writer may add some), trailing data is not.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// VariantDir is the directory of variant inside rundir. The variant name
// must be valid (ParseVariant).
func VariantDir(rundir, variant string) string {
	return filepath.Join(rundir, filepath.FromSlash(variant))
}

// ReadRun reads RUNDIR/run.json.
func ReadRun(rundir string) (*Run, error) {
	b, err := readSmall(filepath.Join(rundir, RunFile), MaxRunSize)
	if err != nil {
		return nil, err
	}
	r, err := ParseRun(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rundir, err)
	}
	return r, nil
}

// ReadMeta reads RUNDIR/VARIANT/meta.json. A variant that has not finished
// has none: the error then satisfies errors.Is(err, fs.ErrNotExist).
func ReadMeta(rundir, variant string) (*Meta, error) {
	if _, err := ParseVariant(variant); err != nil {
		return nil, err
	}
	b, err := readSmall(filepath.Join(VariantDir(rundir, variant), MetaFile), MaxMetaSize)
	if err != nil {
		return nil, err
	}
	m, err := ParseMeta(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variant, err)
	}
	if m.Variant != variant {
		return nil, fmt.Errorf("%s: meta.json names variant %q", variant, m.Variant)
	}
	return m, nil
}

// Record is a run directory as read: its run.json and the meta.json of
// every variant that has one (Missing lists those that do not: not run
// yet, still running, or killed).
type Record struct {
	Dir     string
	Run     *Run
	Metas   []*Meta // in run.json's variant order
	Missing []string
}

// Read reads a whole run directory. A variant whose meta.json is present
// but unreadable or invalid is an error: a record is not silently partial.
func Read(rundir string) (*Record, error) {
	r, err := ReadRun(rundir)
	if err != nil {
		return nil, err
	}
	rec := &Record{Dir: rundir, Run: r}
	for _, v := range r.Variants {
		m, err := ReadMeta(rundir, v)
		if errors.Is(err, os.ErrNotExist) {
			rec.Missing = append(rec.Missing, v)
			continue
		}
		if err != nil {
			return nil, err
		}
		rec.Metas = append(rec.Metas, m)
	}
	return rec, nil
}

// readSmall reads a file of at most max bytes, only when it is a regular
// file (regfile.Open: a FIFO or a device in a run directory would block or
// never end).
func readSmall(path string, max int64) ([]byte, error) {
	f, _, err := regfile.Open(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

// WriteRun writes RUNDIR/run.json atomically.
func WriteRun(rundir string, r *Run) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return WriteJSON(filepath.Join(rundir, RunFile), r)
}

// WriteMeta writes RUNDIR/VARIANT/meta.json atomically, creating the
// variant's directory.
func WriteMeta(rundir string, m *Meta) error {
	if err := m.Validate(); err != nil {
		return err
	}
	dir := VariantDir(rundir, m.Variant)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return WriteJSON(filepath.Join(dir, MetaFile), m)
}

// WriteJSON writes v as indented JSON to path atomically.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFile(path, append(b, '\n'))
}

// WriteFile writes b to path atomically: a temporary file in the same
// directory, synced, then renamed over path.
func WriteFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
