package monitor

import (
	"fmt"
	"math"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Violation kinds.
const (
	KindStall       = "cpu_stall"
	KindImbalance   = "imbalance"
	KindDSQDepth    = "dsq_depth"
	KindSchedExit   = "sched_exit"
	KindCheckFailed = "check_failed"
)

// scxExitErrorMin is SCX_EXIT_ERROR: exit kinds from it up are errors.
const scxExitErrorMin = 1024

// Summary totals a run's evaluation.
type Summary struct {
	Samples        int     `json:"samples"`
	Evaluated      int     `json:"evaluated"` // after warm-up and sanity filtering
	Ignored        int     `json:"ignored"`   // failed the sanity filter
	MaxNrRunning   uint32  `json:"max_nr_running"`
	MaxImbalance   float64 `json:"max_imbalance_ratio"`
	MaxLocalDSQ    uint32  `json:"max_local_dsq_depth"`
	StallPairs     int     `json:"stall_pairs"` // single non-exempt stalled intervals, sustained or not
	Violations     int     `json:"violations"`
	ClocksAdvanced bool    `json:"clocks_advanced"` // some rq clock changed between samples
}

// Evaluator applies Thresholds to a sequence of samples and guest frames.
// It is not safe for concurrent use.
type Evaluator struct {
	th      Thresholds
	sum     Summary
	prev    map[int]wire.CPUSample
	stall   map[int]int // consecutive stalled intervals per CPU
	stallOn map[int]bool
	imb     int
	imbOn   bool
	dsq     map[int]int
	dsqOn   map[int]bool

	scxState   string
	exitTold   bool // a sched_exit violation was raised for the current scheduler
	sawEnabled bool
}

// NewEvaluator returns an Evaluator with th.
func NewEvaluator(th Thresholds) *Evaluator {
	return &Evaluator{th: th, prev: map[int]wire.CPUSample{}, stall: map[int]int{}, stallOn: map[int]bool{},
		dsq: map[int]int{}, dsqOn: map[int]bool{}}
}

// Summary returns the totals so far.
func (e *Evaluator) Summary() Summary { return e.sum }

func (e *Evaluator) add(out []wire.Violation, v wire.Violation) []wire.Violation {
	e.sum.Violations++
	return append(out, v)
}

func secs(ns uint64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }

// Sample evaluates one monitor sample and returns new violations.
func (e *Evaluator) Sample(s *wire.MonitorSample) []wire.Violation {
	var out []wire.Violation
	e.sum.Samples++
	out = e.schedState(out, s)
	if e.sum.Samples <= e.th.WarmupSamples {
		e.remember(s)
		return out
	}
	for _, c := range s.CPUs {
		if e.th.DSQSanity > 0 && c.LocalDSQ > e.th.DSQSanity {
			e.sum.Ignored++
			return out // torn or garbage read: do not let it count or reset anything
		}
	}
	e.sum.Evaluated++
	enabled := s.ScxState == "enabled"
	var minNr, maxNr uint32 = math.MaxUint32, 0
	for _, c := range s.CPUs {
		minNr, maxNr = min(minNr, c.NrRunning), max(maxNr, c.NrRunning)
		e.sum.MaxLocalDSQ = max(e.sum.MaxLocalDSQ, c.LocalDSQ)
		out = e.stallCheck(out, s, c)
		out = e.dsqCheck(out, s, c, enabled)
	}
	if len(s.CPUs) > 0 {
		e.sum.MaxNrRunning = max(e.sum.MaxNrRunning, maxNr)
		ratio := float64(maxNr) / float64(max(1, minNr))
		e.sum.MaxImbalance = max(e.sum.MaxImbalance, ratio)
		if e.th.MaxImbalance > 0 && enabled && len(s.CPUs) > 1 && ratio > e.th.MaxImbalance {
			e.imb++
			if e.imb >= e.th.SustainSamples && !e.imbOn {
				e.imbOn = true
				out = e.add(out, wire.Violation{Kind: KindImbalance, CPU: -1, ElapsedNS: s.ElapsedNS,
					Values:  map[string]float64{"ratio": ratio, "threshold": e.th.MaxImbalance, "max_nr_running": float64(maxNr), "min_nr_running": float64(minNr), "samples": float64(e.imb)},
					Message: fmt.Sprintf("imbalance ratio %.1f (nr_running max %d, min %d) exceeded %.1f for %d consecutive samples (ending at sample %d)", ratio, maxNr, minNr, e.th.MaxImbalance, e.imb, s.Seq)})
			}
		} else {
			e.imb, e.imbOn = 0, false
		}
	}
	e.remember(s)
	return out
}

func (e *Evaluator) remember(s *wire.MonitorSample) {
	for _, c := range s.CPUs {
		if p, ok := e.prev[c.CPU]; ok && p.ClockNS != c.ClockNS && p.ClockNS != 0 {
			e.sum.ClocksAdvanced = true
		}
		e.prev[c.CPU] = c
	}
}

func (e *Evaluator) stallCheck(out []wire.Violation, s *wire.MonitorSample, c wire.CPUSample) []wire.Violation {
	p, ok := e.prev[c.CPU]
	stalled := ok && e.th.Stall &&
		c.ClockNS != 0 && p.ClockNS != 0 && // 0: not yet running
		c.ClockNS == p.ClockNS &&
		!(c.NrRunning == 0 && p.NrRunning == 0) && // idle CPUs are exempt
		!c.Preempted // the vCPU did not run: the guest could not advance
	if !stalled {
		e.stall[c.CPU], e.stallOn[c.CPU] = 0, false
		return out
	}
	e.sum.StallPairs++
	e.stall[c.CPU]++
	if n := e.stall[c.CPU]; n >= e.th.SustainSamples && !e.stallOn[c.CPU] {
		e.stallOn[c.CPU] = true
		out = e.add(out, wire.Violation{Kind: KindStall, CPU: c.CPU, ElapsedNS: s.ElapsedNS,
			Values:  map[string]float64{"clock_ns": float64(c.ClockNS), "nr_running": float64(c.NrRunning), "samples": float64(n)},
			Message: fmt.Sprintf("rq_clock stall on cpu%d for %d consecutive samples (ending at sample %d, clock=%d, nr_running=%d, curr=%s/%d)", c.CPU, n, s.Seq, c.ClockNS, c.NrRunning, c.CurrComm, c.CurrPID)})
	}
	return out
}

func (e *Evaluator) dsqCheck(out []wire.Violation, s *wire.MonitorSample, c wire.CPUSample, enabled bool) []wire.Violation {
	if e.th.MaxLocalDSQ == 0 || !enabled || c.LocalDSQ <= e.th.MaxLocalDSQ {
		e.dsq[c.CPU], e.dsqOn[c.CPU] = 0, false
		return out
	}
	e.dsq[c.CPU]++
	if n := e.dsq[c.CPU]; n >= e.th.SustainSamples && !e.dsqOn[c.CPU] {
		e.dsqOn[c.CPU] = true
		out = e.add(out, wire.Violation{Kind: KindDSQDepth, CPU: c.CPU, ElapsedNS: s.ElapsedNS,
			Values:  map[string]float64{"depth": float64(c.LocalDSQ), "threshold": float64(e.th.MaxLocalDSQ), "samples": float64(n)},
			Message: fmt.Sprintf("local DSQ depth %d on cpu%d exceeded %d for %d consecutive samples (ending at sample %d)", c.LocalDSQ, c.CPU, e.th.MaxLocalDSQ, n, s.Seq)})
	}
	return out
}

// schedState follows the sched_ext state seen in guest memory: leaving
// "enabled" with an error exit kind is a scheduler exit.
func (e *Evaluator) schedState(out []wire.Violation, s *wire.MonitorSample) []wire.Violation {
	prev := e.scxState
	e.scxState = s.ScxState
	if s.ScxState == "enabled" {
		if prev != "enabled" {
			e.exitTold = false
		}
		e.sawEnabled = true
		return out
	}
	if !e.sawEnabled || s.ScxExitKind < scxExitErrorMin {
		return out
	}
	return e.schedExit(out, s.ElapsedNS, s.ScxExitKind, s.ScxExit, "seen in guest memory")
}

func (e *Evaluator) schedExit(out []wire.Violation, at uint64, kind int, name, how string) []wire.Violation {
	if !e.th.SchedExit || e.exitTold {
		return out
	}
	e.exitTold = true
	return e.add(out, wire.Violation{Kind: KindSchedExit, CPU: -1, ElapsedNS: at,
		Values:  map[string]float64{"exit_kind": float64(kind)},
		Message: fmt.Sprintf("sched_ext scheduler exited with %s (kind %d), %s", name, kind, how)})
}

// Frame evaluates a guest frame: scheduler exits and deaths, failed checks.
// at is the frame's time for the report.
func (e *Evaluator) Frame(m wire.Message, at uint64) []wire.Violation {
	var out []wire.Violation
	switch v := m.(type) {
	case wire.SchedExit:
		if v.Kind >= scxExitErrorMin {
			name := v.KindName
			if name == "" {
				name = "an error"
			}
			how := "reported by the guest"
			if v.Reason != "" {
				how += ": " + v.Reason
			}
			if v.Message != "" {
				how += " (" + v.Message + ")"
			}
			out = e.schedExit(out, at, v.Kind, name, how)
		}
	case wire.Phase:
		switch v.Phase {
		case wire.PhaseSchedulerAttached:
			e.exitTold = false
		case wire.PhaseSchedulerDied, wire.PhaseSchedulerNotAttached:
			if e.th.SchedExit && !e.exitTold {
				e.exitTold = true
				msg := "the guest reports " + strings.ReplaceAll(v.Phase, "_", " ")
				if v.Detail != "" {
					msg += ": " + v.Detail
				}
				out = e.add(out, wire.Violation{Kind: KindSchedExit, CPU: -1, ElapsedNS: at, Message: msg})
			}
		}
	case wire.CheckResult:
		if !v.Pass && e.th.FailedChecks {
			msg := fmt.Sprintf("guest check %s failed: observed %g%s, threshold %g%s", v.Name, v.Observed, v.Unit, v.Threshold, v.Unit)
			if v.Cgroup != "" {
				msg += " in cgroup " + v.Cgroup
			}
			msg += fmt.Sprintf(" (step %d)", v.Step)
			if v.Detail != "" {
				msg += ": " + v.Detail
			}
			out = e.add(out, wire.Violation{Kind: KindCheckFailed, CPU: -1, ElapsedNS: at,
				Values: map[string]float64{"observed": v.Observed, "threshold": v.Threshold}, Message: msg})
		}
	}
	return out
}
