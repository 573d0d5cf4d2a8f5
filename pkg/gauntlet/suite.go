package gauntlet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/pipeline"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

// EEVDF is the scheduler name that means "no sched_ext scheduler".
const EEVDF = "eevdf"

// MaxSuiteSize bounds a suite file.
const MaxSuiteSize = 1 << 20

// Suite is a suite file (man/ktstr-suite.5) as written.
type Suite struct {
	Schedulers  []Scheduler `json:"schedulers"`
	Scenarios   []string    `json:"scenarios"`
	Presets     []string    `json:"presets"`
	Kernels     []Kernel    `json:"kernels"`
	Repetitions int         `json:"repetitions"`
	Memory      string      `json:"memory"`
	Timeout     string      `json:"timeout"`
	VMM         string      `json:"vmm"`
	Append      string      `json:"append"`
	BootS       float64     `json:"boot_s"`
	Reserve     string      `json:"reserve"`
	// AutoRepro: ktstr-run --auto-repro for every variant (nil: true).
	AutoRepro *bool `json:"auto_repro"`
}

// Scheduler is one scheduler entry.
type Scheduler struct {
	Name   string   `json:"name"`
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
}

// Kernel is one kernel entry: a bzImage, named (by default) by its
// release.
type Kernel struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// UnmarshalJSON takes a kernel as a path string or an object.
func (k *Kernel) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &k.Path)
	}
	type plain Kernel
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode((*plain)(k))
}

// Loaded is a suite read from a file: validated, paths resolved.
type Loaded struct {
	Path       string // as given
	SHA256     string
	Schedulers []Scheduler // Binary absolute; "" for EEVDF
	Scenarios  []ScenarioRef
	Presets    []PresetRef
	Kernels    []Kernel // Path absolute; Name set
	Reps       int
	Memory     string // "" = sized per preset
	Timeout    time.Duration
	VMM        string
	Append     string
	BootS      float64
	Reserve    string // ktstr-run --reserve: pipeline.ReserveLLCs (default) or ReserveCPUs
	AutoRepro  bool   // ktstr-run --auto-repro (default true)
}

// ScenarioRef is a scenario: a catalog name or a file.
type ScenarioRef struct {
	Name string // the variant part
	Arg  string // what ktstr-run --scenario gets (name or absolute path)
	Hold time.Duration
}

// PresetRef is a topology: a preset or a custom shape.
type PresetRef struct {
	Name  string
	Shape topology.Shape
}

// Defaults.
const (
	DefaultTimeout = 4 * time.Minute
	DefaultVMM     = "auto"
	DefaultBootS   = 10
	// DefaultReserve: each variant's ktstr-run reserves whole host LLCs,
	// so that variants running side by side never share a cache.
	DefaultReserve = pipeline.ReserveLLCs
)

// CheckReserve validates a "reserve" value (the suite's or --reserve's).
func CheckReserve(r string) error {
	switch r {
	case pipeline.ReserveLLCs, pipeline.ReserveCPUs:
		return nil
	}
	return fmt.Errorf("%q: want %s (whole LLCs, the default) or %s (a CPU per vCPU, LLCs shared)", r, pipeline.ReserveLLCs, pipeline.ReserveCPUs)
}

// LoadSuite reads and validates a suite file. Relative paths in it are
// relative to the file's directory. kernelEnv is used when the suite
// names no kernel ($KTSTR_KERNEL). Every error names the file and the
// field.
func LoadSuite(path, kernelEnv string) (*Loaded, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("suite: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSuiteSize+1))
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	if len(b) > MaxSuiteSize {
		return nil, fmt.Errorf("suite %s: larger than %d bytes", path, MaxSuiteSize)
	}
	s, err := ParseSuite(b)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	l, err := s.resolve(dir, kernelEnv)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	l.Path, l.SHA256 = path, hex.EncodeToString(sum[:])
	return l, nil
}

// ParseSuite decodes a suite file's bytes strictly: unknown fields (a
// typo) are errors, and a syntax error names its line and column.
func ParseSuite(b []byte) (*Suite, error) {
	var s Suite
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			l, c := lineCol(b, se.Offset)
			return nil, fmt.Errorf("line %d column %d: %v", l, c, err)
		case errors.As(err, &te):
			l, c := lineCol(b, te.Offset)
			return nil, fmt.Errorf("line %d column %d: %s: want %s, got %s", l, c, te.Field, te.Type, te.Value)
		}
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the suite's JSON object")
	}
	return &s, nil
}

func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// resolve validates s and resolves its paths against dir.
func (s *Suite) resolve(dir, kernelEnv string) (*Loaded, error) {
	l := &Loaded{Reps: s.Repetitions, Memory: s.Memory, VMM: s.VMM, Append: s.Append, BootS: s.BootS, Reserve: s.Reserve, AutoRepro: true}
	if s.AutoRepro != nil {
		l.AutoRepro = *s.AutoRepro
	}
	abs := func(p string) string {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		return p
	}
	if len(s.Schedulers) == 0 {
		return nil, errors.New(`"schedulers" is empty: name at least one (use {"name": "eevdf"} for the EEVDF baseline)`)
	}
	seen := map[string]string{}
	// unique checks that name is a valid variant part not yet used in
	// its list (kind); where names the entry in errors.
	unique := func(kind, where, name string) error {
		if err := runrecord.ValidPart(name); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if prev, ok := seen[kind+"\x00"+name]; ok {
			return fmt.Errorf("%s: %q appears twice (also %s)", where, name, prev)
		}
		seen[kind+"\x00"+name] = where
		return nil
	}
	for i, sc := range s.Schedulers {
		where := fmt.Sprintf("schedulers[%d]", i)
		if sc.Name == "" && sc.Binary != "" {
			sc.Name = filepath.Base(sc.Binary)
		}
		if err := unique("schedulers", where+".name", sc.Name); err != nil {
			return nil, err
		}
		if sc.Name == EEVDF {
			if sc.Binary != "" || len(sc.Args) > 0 {
				return nil, fmt.Errorf("%s: %q is the EEVDF baseline: it takes no binary or args", where, EEVDF)
			}
		} else {
			if sc.Binary == "" {
				return nil, fmt.Errorf("%s (%s): no \"binary\" (only %q needs none)", where, sc.Name, EEVDF)
			}
			sc.Binary = abs(sc.Binary)
			st, err := os.Stat(sc.Binary)
			if err != nil {
				return nil, fmt.Errorf("%s.binary: %w", where, err)
			}
			if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
				return nil, fmt.Errorf("%s.binary %s: not an executable regular file", where, sc.Binary)
			}
		}
		if sc.Args == nil {
			sc.Args = []string{}
		}
		l.Schedulers = append(l.Schedulers, sc)
	}
	if len(s.Scenarios) == 0 {
		return nil, fmt.Errorf(`"scenarios" is empty: name at least one (catalog: %s)`, strings.Join(scenario.Names(), ", "))
	}
	for i, arg := range s.Scenarios {
		where := fmt.Sprintf("scenarios[%d]", i)
		ref := ScenarioRef{Name: arg, Arg: arg}
		if strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".json") {
			ref.Arg = abs(arg)
			ref.Name = strings.TrimSuffix(filepath.Base(arg), ".json")
		}
		sc, _, err := scenario.Load(ref.Arg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := unique("scenarios", where, ref.Name); err != nil {
			return nil, err
		}
		for j := range sc.Steps {
			ref.Hold += sc.Steps[j].Hold()
		}
		l.Scenarios = append(l.Scenarios, ref)
	}
	if len(s.Presets) == 0 {
		return nil, errors.New(`"presets" is empty: name at least one (ktstr-gauntlet --list-presets, or a shape such as 1n2l2c1t)`)
	}
	for i, name := range s.Presets {
		where := fmt.Sprintf("presets[%d]", i)
		ref := PresetRef{Name: name}
		if p, err := topology.LookupPreset(name); err == nil {
			ref.Shape = p.Shape
		} else if sh, perr := topology.Parse(name); perr == nil {
			ref.Shape = sh
			ref.Name = sh.String()
		} else {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if err := unique("presets", where, ref.Name); err != nil {
			return nil, err
		}
		l.Presets = append(l.Presets, ref)
	}
	kernels := s.Kernels
	if len(kernels) == 0 {
		if kernelEnv == "" {
			return nil, errors.New(`"kernels" is empty and KTSTR_KERNEL is unset: name a bzImage`)
		}
		kernels = []Kernel{{Path: kernelEnv}}
	}
	for i, k := range kernels {
		where := fmt.Sprintf("kernels[%d]", i)
		if k.Path == "" {
			return nil, fmt.Errorf("%s: no path", where)
		}
		k.Path = abs(k.Path)
		st, err := os.Stat(k.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s is not a regular file (a bzImage)", where, k.Path)
		}
		if k.Name == "" {
			k.Name = kernelName(k.Path)
		}
		if err := unique("kernels", where, k.Name); err != nil {
			return nil, fmt.Errorf("%w (give the kernels distinct \"name\"s)", err)
		}
		l.Kernels = append(l.Kernels, k)
	}
	if l.Reps == 0 {
		l.Reps = 1
	}
	if l.Reps < 0 || l.Reps > 1000 {
		return nil, fmt.Errorf(`"repetitions" %d: want 1 to 1000`, s.Repetitions)
	}
	l.Timeout = DefaultTimeout
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf(`"timeout" %q: want a positive duration such as 4m`, s.Timeout)
		}
		l.Timeout = d
	}
	if l.VMM == "" {
		l.VMM = DefaultVMM
	}
	switch l.VMM {
	case "auto", "kvm", "qemu":
	default:
		return nil, fmt.Errorf(`"vmm" %q: want auto, kvm or qemu`, l.VMM)
	}
	if l.Reserve == "" {
		l.Reserve = DefaultReserve
	}
	if err := CheckReserve(l.Reserve); err != nil {
		return nil, fmt.Errorf(`"reserve" %w`, err)
	}
	if l.BootS == 0 {
		l.BootS = DefaultBootS
	}
	if l.BootS < 0 || l.BootS > 3600 {
		return nil, fmt.Errorf(`"boot_s" %v: want 0 to 3600 seconds`, s.BootS)
	}
	if strings.ContainsAny(l.Append, "\n\x00") {
		return nil, errors.New(`"append" must be one line`)
	}
	if n := len(l.Schedulers) * len(l.Scenarios) * len(l.Presets) * len(l.Kernels) * l.Reps; n > runrecord.MaxVariants {
		return nil, fmt.Errorf("%d variants, more than %d", n, runrecord.MaxVariants)
	}
	return l, nil
}

// kernelName names a kernel in variant names: its release, else its
// file name, made a valid name part.
func kernelName(path string) string {
	v, err := kernelVersion(path)
	if err != nil || v == "" {
		v = filepath.Base(path)
	}
	return runrecord.MakePart(v, "k")
}
