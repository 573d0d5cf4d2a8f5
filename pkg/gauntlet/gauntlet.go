package gauntlet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"github.com/ktstr-go/ktstr/pkg/pipeline"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// ktstr-gauntlet's exit codes (man/ktstr-gauntlet.1).
const (
	ExitPass      = 0 // every variant passed
	ExitFail      = 1 // a variant failed
	ExitUsage     = 2 // bad arguments or suite
	ExitNoVerdict = 3 // no variant failed, but one gave no verdict
	ExitError     = 4 // a variant could not run (verdict error) or has no record; the engine failed
)

// UsageError marks an error the user can fix in the command line or the
// suite (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usage(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// Options is one ktstr-gauntlet run.
type Options struct {
	Suite        string
	RunDir       string // "" the default (DefaultRunDir)
	RunsRoot     string // the default's root ("runs")
	Resume       bool
	Engine       string // make (default), parallel, slurm
	Jobs         int    // 0: HostCPUs / the largest reservation
	Only         []string
	Exclude      []string
	Budget       time.Duration
	SSHLoginFile string   // parallel
	SbatchArgs   []string // slurm
	Poll         time.Duration
	KtstrRun     string // "" beside Self, else $PATH
	Self         string // ktstr-gauntlet's own executable
	Version      string
	KernelEnv    string // $KTSTR_KERNEL
	Reserve      string // ktstr-run --reserve for every variant; "" the suite's "reserve"
	SysfsRoot    string // host topology for the default -j with whole-LLC reservations; "" /sys
	List         bool   // print the variants and exit
	NoAutoRepro  bool   // no ktstr-run --auto-repro, whatever the suite says
	Stdout       io.Writer
	Stderr       io.Writer
}

// Run expands the suite, prepares the run directory and runs the engine,
// then Finish. It returns the exit code.
func Run(ctx context.Context, o Options) (int, error) {
	if o.Engine == "" {
		o.Engine = runrecord.EngineMake
	}
	switch o.Engine {
	case runrecord.EngineMake, runrecord.EngineParallel, runrecord.EngineSlurm:
	default:
		return ExitUsage, usage("--engine %q: want make, parallel or slurm", o.Engine)
	}
	if o.SSHLoginFile != "" && o.Engine != runrecord.EngineParallel {
		return ExitUsage, usage("--sshloginfile needs --engine parallel")
	}
	if len(o.SbatchArgs) > 0 && o.Engine != runrecord.EngineSlurm {
		return ExitUsage, usage("--sbatch-arg needs --engine slurm")
	}
	if o.Jobs < 0 {
		return ExitUsage, usage("--jobs must be at least 1")
	}
	var plan *Plan
	var run *runrecord.Run
	if o.Resume {
		if o.RunDir == "" {
			return ExitUsage, usage("--resume needs --rundir")
		}
		if len(o.Only)+len(o.Exclude) > 0 || o.Budget > 0 || o.Reserve != "" || o.NoAutoRepro {
			return ExitUsage, usage("--resume runs the run directory's own plan: --only, --exclude, --budget, --reserve and --no-auto-repro do not apply")
		}
		var err error
		if plan, err = ReadPlan(o.RunDir); err != nil {
			return ExitUsage, &UsageError{fmt.Errorf("--resume: %w", err)}
		}
		if run, err = runrecord.ReadRun(o.RunDir); err != nil {
			return ExitUsage, &UsageError{fmt.Errorf("--resume: %w", err)}
		}
		if o.Suite != "" {
			l, err := LoadSuite(o.Suite, o.KernelEnv)
			if err != nil {
				return ExitUsage, &UsageError{err}
			}
			if l.SHA256 != run.SuiteSHA256 {
				return ExitUsage, usage("--resume: %s changed since the run began (its sha256 differs from run.json's); start a new run", o.Suite)
			}
		}
		run.Ended = nil
		run.Engine = o.Engine
	} else {
		l, err := LoadSuite(o.Suite, o.KernelEnv)
		if err != nil {
			return ExitUsage, &UsageError{err}
		}
		if o.Reserve != "" {
			if err := CheckReserve(o.Reserve); err != nil {
				return ExitUsage, usage("--reserve %v", err)
			}
			l.Reserve = o.Reserve
		}
		vs, err := Filter(l.Expand(), o.Only, o.Exclude)
		if err != nil {
			return ExitUsage, &UsageError{err}
		}
		total := len(vs)
		if o.Budget > 0 {
			vs = Budget(vs, o.Budget.Seconds())
			est := 0.0
			for _, v := range vs {
				est += v.EstimateS
			}
			fmt.Fprintf(o.Stderr, "ktstr-gauntlet: budget %s: %d of %d variants, %.0f s estimated\n", o.Budget, len(vs), total, est)
		}
		if len(vs) == 0 {
			return ExitUsage, usage("no variant left to run (check --only, --exclude and --budget)")
		}
		if o.NoAutoRepro {
			for i := range vs {
				vs[i].AutoRepro = false
			}
		}
		if o.List {
			for _, v := range vs {
				fmt.Fprintf(o.Stdout, "%s\t%s\t%.0f\n", v.Name, v.Topology, v.EstimateS)
			}
			return ExitPass, nil
		}
		krun, err := findKtstrRun(o.KtstrRun, o.Self)
		if err != nil {
			return ExitUsage, &UsageError{err}
		}
		if o.RunDir == "" {
			o.RunDir = DefaultRunDir(o.RunsRoot, l.Kernels, o.Version, time.Now())
		}
		if abs, err := filepath.Abs(o.RunDir); err != nil {
			return ExitUsage, usage("--rundir: %v", err)
		} else if err := checkRunDirName(abs); err != nil {
			return ExitUsage, &UsageError{err}
		}
		if err := prepareRunDir(o.RunDir); err != nil {
			return ExitUsage, &UsageError{err}
		}
		host, _ := os.Hostname()
		plan = &Plan{Gauntlet: o.Self, KtstrRun: krun, Variants: vs}
		run = &runrecord.Run{Suite: o.Suite, SuiteSHA256: l.SHA256, Started: time.Now().UTC(), Host: host,
			KtstrVersion: o.Version, Engine: o.Engine, Variants: Names(vs)}
	}
	abs, err := filepath.Abs(o.RunDir)
	if err != nil {
		return ExitUsage, usage("--rundir: %v", err)
	}
	o.RunDir = abs
	if err := checkRunDirName(o.RunDir); err != nil {
		return ExitUsage, &UsageError{err}
	}
	def, fit, tooBig := hostJobs(plan.Variants, o.SysfsRoot)
	if len(tooBig) > 0 {
		fmt.Fprintf(o.Stderr, "ktstr-gauntlet: %d variant(s) (%s) have more vCPUs than this host's LLCs hold: reserving whole LLCs, their ktstr-run refuses them here (ERROR records); set \"reserve\": \"cpus\" in the suite or give --reserve cpus to overcommit\n",
			len(tooBig), tooBig[0]+map[bool]string{true: ", ...", false: ""}[len(tooBig) > 1])
	}
	if o.Jobs == 0 {
		o.Jobs = def
	} else if o.Jobs > def && o.Engine == runrecord.EngineMake {
		fmt.Fprintf(o.Stderr, "ktstr-gauntlet: -j %d: only %d variant(s) fit on %s at once; the rest wait in ktstr-hostlock (its 10 min timeout then fails them)\n", o.Jobs, def, fit)
	}
	slurm := SlurmOptions{Jobs: o.Jobs, CPUsPerTask: maxReservation(plan.Variants, HostCPUs()), Args: o.SbatchArgs}
	if err := writePlan(o.RunDir, plan, slurm); err != nil {
		return ExitError, err
	}
	if err := runrecord.WriteRun(o.RunDir, run); err != nil {
		return ExitError, err
	}
	fmt.Fprintf(o.Stderr, "ktstr-gauntlet: %d variants in %s, engine %s, %d at a time\n", len(plan.Variants), o.RunDir, o.Engine, o.Jobs)
	var eerr error
	switch o.Engine {
	case runrecord.EngineMake:
		eerr = runMake(ctx, o)
	case runrecord.EngineParallel:
		eerr = runParallel(ctx, o, plan)
	case runrecord.EngineSlurm:
		eerr = runSlurm(ctx, o)
	}
	if eerr != nil {
		fmt.Fprintf(o.Stderr, "ktstr-gauntlet: engine %s: %v\n", o.Engine, eerr)
	}
	if ctx.Err() != nil {
		return ExitError, fmt.Errorf("interrupted; finish it with: ktstr-gauntlet --resume --rundir %s", o.RunDir)
	}
	code, err := Finish(o.RunDir, o.Stdout)
	if err != nil {
		return ExitError, err
	}
	if eerr != nil && code == ExitPass {
		code = ExitError
	}
	return code, nil
}

// DefaultRunDir is ROOT/KERNEL-VERSION/TIMESTAMP: KERNEL is the suite's
// kernel's name (its release) when it has one, "multi" when several,
// VERSION ktstr's (git describe: its commit), TIMESTAMP the UTC start
// time, to the second.
func DefaultRunDir(root string, kernels []Kernel, version string, now time.Time) string {
	if root == "" {
		root = "runs"
	}
	k := "multi"
	if len(kernels) == 1 {
		k = kernels[0].Name
	}
	v := runrecord.MakePart(version, "k") // any text, as a name part
	if version == "" {
		v = "unknown"
	}
	return filepath.Join(root, k+"-"+v, now.UTC().Format("20060102T150405Z"))
}

// prepareRunDir creates dir, refusing one that exists and is not empty.
func prepareRunDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err == nil && len(ents) > 0 {
		return fmt.Errorf("run directory %s exists and is not empty: give another --rundir, or --resume to finish it", dir)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	return nil
}

// checkRunDirName refuses paths that the Makefile, the Slurm script or
// parallel's command line could not carry safely.
func checkRunDirName(dir string) error {
	if i := strings.IndexAny(dir, " \t\n'\"\\$%#`*?[]{}();&|<>!"); i >= 0 {
		return fmt.Errorf("run directory %q: %q is not allowed in its path (the engines' scripts carry it)", dir, dir[i])
	}
	return nil
}

// findKtstrRun finds ktstr-run: the given path, else beside self, else
// on $PATH.
func findKtstrRun(given, self string) (string, error) {
	if given != "" {
		p, err := exec.LookPath(given)
		if err != nil {
			return "", fmt.Errorf("--ktstr-run %s: %w", given, err)
		}
		return filepath.Abs(p)
	}
	if self != "" {
		if p, err := filepath.EvalSymlinks(self); err == nil {
			c := filepath.Join(filepath.Dir(p), "ktstr-run")
			if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return c, nil
			}
		}
	}
	p, err := exec.LookPath("ktstr-run")
	if err != nil {
		return "", fmt.Errorf("ktstr-run not found beside %s or on $PATH: install ktstr (make install) or give --ktstr-run", self)
	}
	return filepath.Abs(p)
}

// HostCPUs is how many CPUs this process may run on.
func HostCPUs() int { return max(1, runtime.NumCPU()) }

// maxReservation is the most CPUs one variant's ktstr-run reserves: one
// per vCPU, at most the host's (ktstr-run overcommits a bigger guest).
func maxReservation(vs []Variant, hostCPUs int) int {
	r := 1
	for _, v := range vs {
		r = max(r, min(v.VCPUs, hostCPUs))
	}
	return r
}

// DefaultJobs is how many variants that reserve CPUs run at once by
// default: as many as the host's CPUs hold side by side at the largest
// reservation, at least 1. More would only queue in ktstr-hostlock.
func DefaultJobs(vs []Variant, hostCPUs int) int {
	return max(1, hostCPUs/maxReservation(vs, hostCPUs))
}

// DefaultJobsLLCs is DefaultJobs for variants that reserve whole LLCs
// (ktstr-run --reserve llcs): the host's LLCs (those with CPUs this
// process may use) divided by the most LLCs one variant takes
// (hosttopo.LLCsFor its vCPUs, as ktstr-run computes it), at least 1.
// Variants too big for the host's LLCs take none (their ktstr-run
// refuses them at once); tooBig lists them.
func DefaultJobsLLCs(vs []Variant, host *hosttopo.Topology) (jobs int, tooBig []string) {
	llcs := 0
	for _, l := range host.LLCs {
		if len(host.AllowedIn(l.Index)) > 0 {
			llcs++
		}
	}
	most := 1
	for _, v := range vs {
		k, err := host.LLCsFor(max(1, v.VCPUs))
		if err != nil {
			tooBig = append(tooBig, v.Name)
			continue
		}
		most = max(most, k)
	}
	return max(1, llcs/most), tooBig
}

// hostJobs is the default -j for this host: DefaultJobs over the
// variants that reserve CPUs, DefaultJobsLLCs over those that reserve
// whole LLCs (the host topology read at sysfsRoot), the smaller when a
// plan has both; fit says what bounds it, for messages. Where the
// topology cannot be read, whole-LLC variants run one at a time.
func hostJobs(vs []Variant, sysfsRoot string) (jobs int, fit string, tooBig []string) {
	var cpus, llcs []Variant
	for _, v := range vs {
		if v.Reserve == pipeline.ReserveLLCs {
			llcs = append(llcs, v)
		} else {
			cpus = append(cpus, v)
		}
	}
	jobs = math.MaxInt
	if len(cpus) > 0 {
		jobs, fit = DefaultJobs(cpus, HostCPUs()), fmt.Sprintf("this host's %d CPUs", HostCPUs())
	}
	if len(llcs) > 0 {
		host, err := hosttopo.Read(sysfsRoot)
		if err != nil {
			return 1, fmt.Sprintf("this host (its LLCs are unknown: %v)", err), nil
		}
		var j int
		if j, tooBig = DefaultJobsLLCs(llcs, host); j < jobs {
			n := 0
			for _, l := range host.LLCs {
				if len(host.AllowedIn(l.Index)) > 0 {
					n++
				}
			}
			jobs, fit = j, fmt.Sprintf("this host's %d LLC(s), whole", n)
		}
	}
	return max(1, jobs), fit, tooBig
}
