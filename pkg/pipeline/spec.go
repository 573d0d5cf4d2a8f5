package pipeline

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"github.com/ktstr-go/ktstr/pkg/kernel"
	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

// Tool names, in pipeline order.
const (
	Mkinitramfs = "ktstr-mkinitramfs"
	Hostlock    = "ktstr-hostlock"
	Boot        = "ktstr-boot"
	Monitor     = "ktstr-monitor"
	Decode      = "ktstr-decode"
	Tee         = "tee"
)

// Tools maps each tool name to its executable.
type Tools map[string]string

// FindTools finds every ktstr tool beside self (ktstr-run's executable),
// else on $PATH, and tee(1) on $PATH. The error names what is missing.
func FindTools(self string) (Tools, error) {
	t := Tools{}
	var missing []string
	dir := ""
	if self != "" {
		if p, err := filepath.EvalSymlinks(self); err == nil {
			dir = filepath.Dir(p)
		}
	}
	for _, name := range []string{Mkinitramfs, Hostlock, Boot, Monitor, Decode, Tee} {
		if dir != "" && name != Tee {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				t[name] = p
				continue
			}
		}
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		t[name] = p
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("%s not found beside %s or on $PATH: install ktstr (make install) or put its bin/ on $PATH", strings.Join(missing, ", "), self)
	}
	return t, nil
}

// Spec is one ktstr-run: what to boot and how.
type Spec struct {
	Kernel    string   // bzImage (required)
	Scheduler string   // scheduler binary; "" runs the EEVDF baseline
	SchedArgs []string // the scheduler's arguments
	Scenario  string   // catalog name or file; "" the guest's default
	Topology  string   // NnNlNcNt (default DefaultTopology)
	Memory    string   // guest RAM (default "1G")
	Timeout   time.Duration
	VMM       string // ktstr-boot --vmm (default "auto")
	Vmlinux   string // for ktstr-monitor's sampling; "" its default
	Console   string // file for the guest console; "" stderr
	Save      string // file for the raw stream; "" none
	Append    string // extra kernel command line
	JSON      bool   // the verdict as a JSON record
	Reserve   string // ReserveCPUs (default) or ReserveLLCs: what ktstr-hostlock reserves
	SysfsRoot string // sysfs the host topology is read from; "" /sys (tests: a fake tree)

	// KernelOptions is how Check resolves a Kernel that is not a file
	// (pkg/kernel: a source tree, a cached version or key, or nothing).
	KernelOptions kernel.ResolveOptions
	// Release, set by Check, lets go of a cached kernel (ktstr-kernel gc
	// keeps it while the run holds it). Call it when the run is over.
	Release func()
}

// Defaults.
const (
	DefaultTopology = "1n1l2c1t"
	DefaultMemory   = "1G"
	DefaultTimeout  = 240 * time.Second
	DefaultVMM      = "auto"
	DefaultReserve  = ReserveCPUs
)

// What a run reserves on the host (--reserve).
const (
	// ReserveCPUs: ktstr-hostlock --cpus V, a host CPU per vCPU (at most
	// the CPUs this process may use: a bigger guest is overcommitted),
	// exclusive per CPU, their LLCs held shared: another run may use the
	// rest of an LLC. Cheap; the default for single runs.
	ReserveCPUs = "cpus"
	// ReserveLLCs: ktstr-hostlock --llcs K, the fewest whole LLCs that
	// hold the guest's vCPUs, exclusively: no other reservation shares
	// their caches. A guest bigger than the host's LLCs hold is refused.
	ReserveLLCs = "llcs"
)

// Reservation is the ktstr-hostlock request of a run: --Mode Count.
type Reservation struct {
	Mode  string // ReserveCPUs or ReserveLLCs
	Count int    // CPUs or LLCs
}

// Args are the reservation as ktstr-hostlock flags.
func (r Reservation) Args() []string { return []string{"--" + r.Mode, strconv.Itoa(r.Count)} }

// FitError says the guest can never get its reservation on this host
// (--reserve llcs and more vCPUs than the host's LLCs hold): ktstr-run
// refuses it before anything runs, as a usage error.
type FitError struct{ Msg string }

func (e *FitError) Error() string { return e.Msg }

// HostReservation sizes the reservation for a guest of the given
// topology (from Check). With ReserveCPUs it is a host CPU per vCPU, at
// most runtime.NumCPU (the CPUs this process may use), so a bigger guest
// is overcommitted, not refused. With ReserveLLCs it reads the host
// topology (pkg/hosttopo, at SysfsRoot) and asks for the fewest whole
// LLCs that hold the vCPUs whichever LLCs ktstr-hostlock picks; a guest
// bigger than all of them is a *FitError (one line naming what the host
// has), never a request that could only wait.
func (s *Spec) HostReservation(guest *topology.Topology) (Reservation, error) {
	vcpus := len(guest.CPUs)
	if s.Reserve != ReserveLLCs {
		return Reservation{ReserveCPUs, max(1, min(vcpus, runtime.NumCPU()))}, nil
	}
	host, err := hosttopo.Read(s.SysfsRoot)
	if err != nil {
		return Reservation{}, fmt.Errorf("--reserve llcs: reading the host topology: %w", err)
	}
	k, err := host.LLCsFor(vcpus)
	if err != nil {
		return Reservation{}, &FitError{fmt.Sprintf("--reserve llcs: the %d vCPUs of --topology %s: %v; give a smaller --topology, or --reserve cpus to overcommit the host",
			vcpus, s.Topology, err)}
	}
	return Reservation{ReserveLLCs, k}, nil
}

// Check validates s and fills in defaults. Its errors are usage errors.
func (s *Spec) Check() (*topology.Topology, error) {
	s.Release = func() {}
	if err := s.resolveKernel(); err != nil {
		return nil, err
	}
	if s.Topology == "" {
		s.Topology = DefaultTopology
	}
	if s.Memory == "" {
		s.Memory = DefaultMemory
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Timeout < 0 {
		return nil, errors.New("--timeout must not be negative")
	}
	if s.VMM == "" {
		s.VMM = DefaultVMM
	}
	switch s.Reserve {
	case "":
		s.Reserve = DefaultReserve
	case ReserveCPUs, ReserveLLCs:
	default:
		return nil, fmt.Errorf("--reserve %q: want %s or %s", s.Reserve, ReserveCPUs, ReserveLLCs)
	}
	shape, err := topology.Parse(s.Topology)
	if err != nil {
		return nil, fmt.Errorf("--topology: %w", err)
	}
	t, err := topology.New(shape)
	if err != nil {
		return nil, fmt.Errorf("--topology: %w", err)
	}
	if s.Scenario != "" {
		// A scenario whose cpusets do not fit the guest fails here, on
		// the host, before anything boots.
		sc, _, err := scenario.Load(s.Scenario)
		if err != nil {
			return nil, fmt.Errorf("--scenario: %w", err)
		}
		st, err := scenario.TopologyOf(s.Topology)
		if err != nil {
			return nil, fmt.Errorf("--topology: %w", err)
		}
		if err := sc.CheckTopology(st); err != nil {
			return nil, fmt.Errorf("--scenario %s does not fit --topology %s: %w", s.Scenario, s.Topology, err)
		}
	}
	if s.Scheduler == "" && len(s.SchedArgs) > 0 {
		return nil, errors.New("scheduler arguments after -- need --scheduler")
	}
	for _, f := range []struct{ flag, path string }{{"--scheduler", s.Scheduler}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.flag, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s %s: not a regular file", f.flag, f.path)
		}
	}
	// Absolute paths, so that the printed pipeline runs from anywhere.
	for _, p := range []*string{&s.Kernel, &s.Scheduler, &s.Vmlinux, &s.Save, &s.Console, &s.SysfsRoot} {
		if *p != "" && *p != "-" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	if s.Scenario != "" && strings.ContainsRune(s.Scenario, os.PathSeparator) {
		if abs, err := filepath.Abs(s.Scenario); err == nil {
			s.Scenario = abs
		}
	}
	return t, nil
}

// resolveKernel turns Kernel into a bzImage path as ktstr-boot would (a
// file as given; else pkg/kernel's resolution: a source tree, a cached
// version or key, ./linux, ../linux, /lib/modules/$(uname -r)/build,
// /boot/vmlinuz-$(uname -r)), so that the printed pipeline names the
// kernel that runs, and picks the vmlinux that belongs to it for
// ktstr-monitor unless Vmlinux is given.
func (s *Spec) resolveKernel() error {
	var k kernel.Kernel
	if st, err := os.Stat(s.Kernel); s.Kernel != "" && err == nil && st.Mode().IsRegular() {
		k = kernel.Companions(s.Kernel)
	} else if s.Kernel != "" && err == nil && !st.IsDir() {
		return fmt.Errorf("--kernel %s: not a regular file", s.Kernel)
	} else {
		o := s.KernelOptions
		if o.CacheDir == "" {
			o.CacheDir = os.Getenv("KTSTR_KERNEL_CACHE_DIR")
		}
		var release func()
		k, release, err = kernel.Resolve(s.Kernel, o)
		if err != nil {
			if s.Kernel == "" {
				return fmt.Errorf("--kernel not given (nor KTSTR_KERNEL) and %v", err)
			}
			return fmt.Errorf("--kernel %s: %w", s.Kernel, err)
		}
		s.Release = release
	}
	s.Kernel = k.BzImage
	if s.Vmlinux == "" {
		s.Vmlinux = k.Vmlinux
	}
	return nil
}

// BlobVar is the shell variable that holds the initramfs path in Script.
const BlobVar = "blob"

// MkinitramfsArgs is the initramfs build command.
func (s *Spec) MkinitramfsArgs(t Tools) []string {
	a := []string{t[Mkinitramfs]}
	if s.Scheduler != "" {
		a = append(a, "--scheduler", s.Scheduler)
	}
	if s.Scenario != "" {
		a = append(a, "--scenario", s.Scenario)
	}
	if len(s.SchedArgs) > 0 {
		a = append(a, "--")
		a = append(a, s.SchedArgs...)
	}
	return a
}

// Stages returns the pipeline's commands, left to right, for the
// initramfs at blob, with ktstr-boot under ktstr-hostlock's reservation r
// (ktstr-boot pins its vCPUs to the reserved CPUs, $KTSTR_CPUS).
func (s *Spec) Stages(t Tools, blob string, r Reservation) [][]string {
	boot := []string{t[Hostlock]}
	if s.SysfsRoot != "" && s.SysfsRoot != hosttopo.DefaultRoot {
		boot = append(boot, "--sysfs-root", s.SysfsRoot)
	}
	boot = append(boot, r.Args()...)
	boot = append(boot, "--",
		t[Boot], "--vmm", s.VMM, "--kernel", s.Kernel, "--initramfs", blob,
		"--topology", s.Topology, "--memory", s.Memory, "--timeout", s.Timeout.String())
	if s.Console != "" {
		boot = append(boot, "--console", s.Console)
	}
	if s.Append != "" {
		boot = append(boot, "--append", s.Append)
	}
	// --emit: the monitor's violations (and samples) go into the stream, so
	// the verdict line, the saved stream and any later re-judging all see
	// them; without it ktstr-decode said PASS while the monitor failed.
	mon := []string{t[Monitor], "--tee", "--emit"}
	if s.Vmlinux != "" {
		mon = append(mon, "--vmlinux", s.Vmlinux)
	}
	stages := [][]string{boot, mon}
	if s.Save != "" {
		stages = append(stages, []string{t[Tee], s.Save})
	}
	dec := []string{t[Decode], "-q", "--verdict"}
	if s.JSON {
		dec = append(dec, "--json")
	}
	return append(stages, dec)
}

// Script returns the run as a POSIX shell script that a user can paste:
// the initramfs build, then the pipeline with pipefail (bash, zsh, ksh).
func (s *Spec) Script(t Tools, r Reservation) string {
	var b strings.Builder
	b.WriteString("set -o pipefail\n")
	fmt.Fprintf(&b, "%s=$(%s) || exit 4\n", BlobVar, shellJoin(s.MkinitramfsArgs(t)))
	var parts []string
	for _, st := range s.Stages(t, "\x00", r) {
		parts = append(parts, strings.ReplaceAll(shellJoin(st), shellQuote("\x00"), `"$`+BlobVar+`"`))
	}
	b.WriteString(strings.Join(parts, " \\\n  | "))
	b.WriteString("\n")
	return b.String()
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes a for a POSIX shell when it needs it.
func shellQuote(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
