package guest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/probe"
	"github.com/ktstr-go/ktstr/pkg/runconfig"
)

// Overrides are the kernel command-line keys the init honours. They are
// documented in man/ktstr-init.1:
//
//	ktstr.scenario=NAME|PATH   catalog name, or a path inside the initramfs
//	ktstr.attach_timeout=D     scheduler attach timeout (ms, or a Go duration such as 20s)
//	ktstr.hold=D               replace every step's hold time (ms or Go duration)
//	ktstr.sched_args=A,B,...   replace the scheduler's arguments (comma-separated; empty for none)
//	ktstr.scheduler=none       ignore the packed scheduler: an EEVDF baseline run
//	ktstr.port=NAME            the virtio port to write frames to (default "ktstr")
//	ktstr.kthreadd_cpu=N       pin kthreadd to CPU N while the scheduler attaches (see KthreaddCPU)
//	ktstr.spread_pct=P         replace the scenario's fairness spread limit (percent)
//	ktstr.starvation_ms=N      replace the scenario's starvation gap limit (milliseconds)
//	ktstr.probe=1|F,F,...      attach the auto-repro BPF probes (pkg/probe), plus generic ones on F
type Overrides struct {
	Scenario      string
	AttachTimeout time.Duration
	Hold          time.Duration
	SchedArgs     []string
	HasSchedArgs  bool
	NoScheduler   bool
	Port          string
	// KthreaddCPU, when >= 0, pins kthreadd (PID 2) to that CPU while the
	// scheduler attaches, so that kernel helper threads created then start
	// there. Linux 6.12 runs a scheduler's ops.init on an unbound helper
	// kthread; scx_central insists that it runs on its central CPU (0 by
	// default) and fails with "init from non-central CPU" otherwise.
	KthreaddCPU  int
	SpreadPct    float64
	StarvationMS int
	TaskStallMS  int // 0: not given; -1: the check is off
	// Shell (ktstr.mode=shell) and Exec (ktstr.exec=BASE64) are
	// ktstr-boot's --shell and --exec: instead of a scenario, the init
	// runs an interactive shell, or one command, on /dev/hvc0.
	Shell   bool
	Exec    string
	HasExec bool
	// Probe (ktstr.probe) attaches the auto-repro probes; ProbeFuncs
	// are the extra kernel functions to probe.
	Probe      bool
	ProbeFuncs []string
	Unknown    []string
}

// SplitCmdline splits a kernel command line into words, honouring double
// quotes the way the kernel does (quotes group, and are removed).
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQ, have = !inQ, true
		case !inQ && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

func parseDur(v string) (time.Duration, error) {
	if ms, err := strconv.Atoi(v); err == nil {
		if ms <= 0 {
			return 0, fmt.Errorf("%q must be positive", v)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is neither milliseconds nor a positive duration such as 20s", v)
	}
	return d, nil
}

// ParseOverrides extracts the ktstr.* keys from a kernel command line.
// Unknown ktstr.* keys are listed in Unknown (the init logs them); a
// malformed value is an error.
func ParseOverrides(cmdline string) (*Overrides, error) {
	o := &Overrides{KthreaddCPU: -1}
	for _, w := range SplitCmdline(cmdline) {
		if !strings.HasPrefix(w, "ktstr.") {
			continue
		}
		k, v, _ := strings.Cut(w, "=")
		var err error
		switch k {
		case "ktstr.scenario":
			if v == "" {
				err = fmt.Errorf("empty value")
			}
			o.Scenario = v
		case "ktstr.attach_timeout":
			o.AttachTimeout, err = parseDur(v)
		case "ktstr.hold":
			o.Hold, err = parseDur(v)
		case "ktstr.sched_args":
			o.HasSchedArgs = true
			o.SchedArgs = nil
			if v != "" {
				o.SchedArgs = strings.Split(v, ",")
			}
		case "ktstr.scheduler":
			if v != "none" {
				err = fmt.Errorf("only \"none\" is accepted")
			}
			o.NoScheduler = true
		case "ktstr.kthreadd_cpu":
			o.KthreaddCPU, err = strconv.Atoi(v)
			if err == nil && (o.KthreaddCPU < 0 || o.KthreaddCPU > 4095) {
				err = fmt.Errorf("CPU %d out of range", o.KthreaddCPU)
			}
		case "ktstr.spread_pct":
			o.SpreadPct, err = strconv.ParseFloat(v, 64)
			if err == nil && !(o.SpreadPct > 0 && o.SpreadPct <= 1000) {
				err = fmt.Errorf("want a percentage in (0, 1000]")
			}
		case "ktstr.starvation_ms":
			o.StarvationMS, err = strconv.Atoi(v)
			if err == nil && o.StarvationMS <= 0 {
				err = fmt.Errorf("want a positive number of milliseconds")
			}
		case "ktstr.task_stall_ms":
			o.TaskStallMS, err = strconv.Atoi(v)
			switch {
			case err != nil:
			case o.TaskStallMS == 0:
				o.TaskStallMS = -1 // 0 turns the check off
			case o.TaskStallMS < 0:
				err = fmt.Errorf("want a number of milliseconds, 0 to turn the check off")
			}
		case runconfig.ModeKey:
			if v != runconfig.ModeShell {
				err = fmt.Errorf("only %q is accepted", runconfig.ModeShell)
			}
			o.Shell = true
		case runconfig.ExecKey:
			o.Exec, err = runconfig.DecodeExec(v)
			o.HasExec = true
		case probe.CmdlineKey:
			o.Probe = true
			o.ProbeFuncs, err = probe.ParseList(v)
		case "ktstr.port":
			if v == "" || strings.ContainsAny(v, "/") {
				err = fmt.Errorf("want a port name")
			}
			o.Port = v
		default:
			o.Unknown = append(o.Unknown, k)
		}
		if err != nil {
			return nil, fmt.Errorf("kernel command line %s: %w", w, err)
		}
	}
	return o, nil
}
