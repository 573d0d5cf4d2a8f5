package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ktstr-go/ktstr/pkg/regfile"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/verdict"
)

// Status is what the report says of a variant. It uses meta.json's words.
type Status string

// The four statuses. Only StatusPass is a pass.
const (
	StatusPass      Status = runrecord.Pass
	StatusFail      Status = runrecord.Fail
	StatusNoVerdict Status = runrecord.NoVerdict
	StatusError     Status = runrecord.Error // the variant did not run (meta.json says so)
)

// Word is the status as the text report spells it.
func (s Status) Word() string {
	switch s {
	case StatusPass:
		return "PASS"
	case StatusFail:
		return "FAIL"
	case StatusError:
		return "ERROR"
	}
	return "NO VERDICT"
}

func statusOf(r verdict.Result) Status {
	switch r {
	case verdict.Pass:
		return StatusPass
	case verdict.Fail:
		return StatusFail
	}
	return StatusNoVerdict
}

// consoleTail is how much of console.txt the reports keep.
const consoleTail = 8 << 10

// Variant is one variant of a run as the report shows it.
type Variant struct {
	Name      string `json:"variant"`
	Scheduler string `json:"scheduler"` // the name's first component
	Case      string `json:"case"`      // the rest: scenario/preset[/kernel][/repN]
	Status    Status `json:"status"`
	Reason    string `json:"reason"`
	// Mismatch is set when meta.json's verdict differs from the stream's.
	Mismatch string `json:"mismatch,omitempty"`
	// Notes say what was missing or odd in the variant's directory.
	Notes   []string         `json:"notes,omitempty"`
	Meta    *runrecord.Meta  `json:"meta,omitempty"`
	Verdict *verdict.Verdict `json:"verdict,omitempty"` // nil: no stream could be read
	// Metrics holds each metric of the Metrics table the variant has a
	// value for (see Compare).
	Metrics map[string]float64 `json:"metrics"`
	Cgroups []CgroupStats      `json:"cgroups,omitempty"`
	// RunQueue is the monitor's per-CPU runqueue depth over time
	// (downsampled); nil without monitor samples.
	RunQueue *RunQueue `json:"runqueue,omitempty"`
	Console  string    `json:"console_tail,omitempty"` // the end of console.txt
	// BPF is the scheduler's BPF verifier statistics (bpf_prog_stats);
	// Repro the auto-repro boot's timeline (repro.ktstr). nil: none.
	BPF   *BPFStats `json:"bpf,omitempty"`
	Repro *Repro    `json:"repro,omitempty"`
}

// Run is a whole run directory.
type Run struct {
	Dir       string         `json:"dir"`
	Record    *runrecord.Run `json:"run,omitempty"`
	RecordErr string         `json:"run_error,omitempty"` // why run.json could not be used
	Variants  []*Variant     `json:"variants"`
	Counts    Counts         `json:"counts"`
}

// Counts counts variants by status.
type Counts struct {
	Pass      int `json:"pass"`
	Fail      int `json:"fail"`
	NoVerdict int `json:"no_verdict"`
	Error     int `json:"error"`
}

// AllPass reports whether the run has variants and every one passed.
func (r *Run) AllPass() bool {
	return len(r.Variants) > 0 && r.Counts.Pass == len(r.Variants)
}

// Variant returns the variant named name, or nil.
func (r *Run) Variant(name string) *Variant {
	i := sort.Search(len(r.Variants), func(i int) bool { return r.Variants[i].Name >= name })
	if i < len(r.Variants) && r.Variants[i].Name == name {
		return r.Variants[i]
	}
	return nil
}

// Load reads the run directory dir. Its error is for a dir that cannot be
// read at all; whatever is missing or corrupt inside it is reported in the
// Run (RecordErr, each Variant's Status, Reason and Notes).
func Load(dir string) (*Run, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("run directory %s: not a directory", dir)
	}
	run := &Run{Dir: dir}
	names, err := runrecord.FindVariants(dir)
	if err != nil {
		return nil, err
	}
	rec, err := runrecord.ReadRun(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		run.RecordErr = runrecord.RunFile + " missing"
	case err != nil:
		run.RecordErr = err.Error()
	default:
		run.Record = rec
		names = append(names, rec.Variants...)
		slices.Sort(names)
		names = slices.Compact(names)
	}
	for _, n := range names {
		v := loadVariant(dir, n)
		run.Variants = append(run.Variants, v)
		switch v.Status {
		case StatusPass:
			run.Counts.Pass++
		case StatusFail:
			run.Counts.Fail++
		case StatusError:
			run.Counts.Error++
		default:
			run.Counts.NoVerdict++
		}
	}
	return run, nil
}

func loadVariant(dir, name string) *Variant {
	v := &Variant{Name: name, Metrics: map[string]float64{}}
	v.Scheduler, v.Case, _ = strings.Cut(name, "/")
	if v.Case == "" {
		v.Case = "-"
	}
	// The name is a path inside dir: run.json's names are valid variant
	// names (runrecord.ParseRun), the walk's are directories it found.
	vdir := runrecord.VariantDir(dir, name)
	var meta *runrecord.Meta
	if _, err := runrecord.ParseVariant(name); err != nil {
		// A directory ktstr-gauntlet cannot have written: its stream is
		// judged, its meta.json (which must name a valid variant) is not
		// read.
		v.Notes = append(v.Notes, "not a variant name: "+err.Error())
	} else {
		m, err := runrecord.ReadMeta(dir, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			v.Notes = append(v.Notes, runrecord.MetaFile+" missing")
		case err != nil:
			v.Notes = append(v.Notes, runrecord.MetaFile+" unusable: "+err.Error())
		default:
			v.Meta, meta = m, m
		}
	}
	v.Console = readTail(filepath.Join(vdir, runrecord.ConsoleFile), consoleTail)
	v.Repro = loadRepro(vdir)

	f, _, err := regfile.Open(filepath.Join(vdir, runrecord.StreamFile), os.O_RDONLY)
	if err != nil {
		v.Status, v.Reason = StatusNoVerdict, "stream missing"
		if !errors.Is(err, fs.ErrNotExist) {
			v.Reason = "stream unreadable: " + err.Error()
		}
		if meta != nil && meta.Verdict == runrecord.Error {
			v.Status = StatusError
		}
		if meta != nil && meta.Reason != "" {
			v.Reason += " (" + runrecord.MetaFile + ": " + meta.Verdict + ": " + meta.Reason + ")"
		}
		v.setWall()
		return v
	}
	defer f.Close()
	sd := newStreamData()
	vd, err := sd.scan(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		v.Status, v.Reason = StatusNoVerdict, "stream unreadable: "+err.Error()
		v.setWall()
		return v
	}
	v.Verdict = &vd
	v.Status, v.Reason = statusOf(vd.Result), vd.Reason
	sd.metrics(v.Metrics)
	v.Cgroups = sd.cgroupStats()
	v.RunQueue = sd.rq.result()
	v.BPF = sd.bpf.result()
	if meta != nil && meta.Verdict != string(v.Status) {
		v.Mismatch = fmt.Sprintf("%s says %s, the stream judges %s", runrecord.MetaFile, meta.Verdict, v.Status)
		if v.Status == StatusPass {
			// Not a pass when the record of the run says otherwise: the
			// report never shows a pass that anything disputes.
			v.Status = Status(meta.Verdict)
			v.Reason = fmt.Sprintf("%s says %s", runrecord.MetaFile, meta.Verdict)
			if meta.Reason != "" {
				v.Reason += ": " + meta.Reason
			}
			v.Reason += " (the stream alone would pass)"
		}
	}
	v.setWall()
	return v
}

// setWall sets the wall_s metric: meta.json's wall time when it has one,
// else the VMM's from the stream's vm_exit.
func (v *Variant) setWall() {
	switch {
	case v.Meta != nil && v.Meta.WallS > 0:
		v.Metrics[MetricWall] = v.Meta.WallS
	case v.Verdict != nil && v.Verdict.WallS > 0:
		v.Metrics[MetricWall] = v.Verdict.WallS
	}
}

// readTail returns up to n bytes of the end of a file, from a line start
// when it was cut, as valid UTF-8; "" when the file cannot be read.
func readTail(path string, n int64) string {
	f, st, err := regfile.Open(path, os.O_RDONLY)
	if err != nil {
		return ""
	}
	defer f.Close()
	off := int64(0)
	if st.Size() > n {
		off = st.Size() - n
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, n))
	if err != nil {
		return ""
	}
	if off > 0 {
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return printable(string(b))
}

// printable makes console text safe to show: invalid UTF-8 becomes U+FFFD,
// C0 control characters other than newline and tab are written in caret
// notation (ESC as ^[), and C1 controls and DEL as Go escapes, so that
// no terminal escape, NUL or character XML forbids reaches a report.
func printable(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20:
			b.WriteByte('^')
			b.WriteByte(byte(r) + 64)
		case r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
