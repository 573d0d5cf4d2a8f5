package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Thresholds configure the evaluator. The zero value disables every
// check; DefaultThresholds is what ktstr-monitor uses.
type Thresholds struct {
	// WarmupSamples are dropped before evaluation starts (boot noise).
	WarmupSamples int `json:"warmup_samples"`
	// SustainSamples is how many consecutive samples a condition must
	// hold for before it is a violation.
	SustainSamples int `json:"sustain_samples"`
	// MaxImbalance is the largest allowed max/max(1,min) nr_running
	// ratio across CPUs while a sched_ext scheduler is enabled; 0 disables.
	MaxImbalance float64 `json:"max_imbalance_ratio"`
	// MaxLocalDSQ is the largest allowed local DSQ depth of any CPU;
	// 0 disables.
	MaxLocalDSQ uint32 `json:"max_local_dsq_depth"`
	// Stall enables the runqueue clock stall check.
	Stall bool `json:"stall"`
	// SchedExit makes a sched_ext error exit a violation.
	SchedExit bool `json:"sched_exit"`
	// FailedChecks makes a failed guest check a violation.
	FailedChecks bool `json:"failed_checks"`
	// DSQSanity: samples with a local DSQ depth above it are torn reads
	// or garbage and are ignored for evaluation.
	DSQSanity uint32 `json:"dsq_sanity_limit"`
}

// DefaultThresholds are upstream ktstr's defaults (see man/ktstr-monitor.1
// for the reasons).
var DefaultThresholds = Thresholds{
	WarmupSamples:  20,
	SustainSamples: 5,
	MaxImbalance:   4.0,
	MaxLocalDSQ:    50,
	Stall:          true,
	SchedExit:      true,
	FailedChecks:   true,
	DSQSanity:      10000,
}

// Validate rejects values that make no sense.
func (t Thresholds) Validate() error {
	switch {
	case t.WarmupSamples < 0 || t.WarmupSamples > 1e6:
		return fmt.Errorf("warmup_samples %d out of range 0..1000000", t.WarmupSamples)
	case t.SustainSamples < 1 || t.SustainSamples > 1e6:
		return fmt.Errorf("sustain_samples %d out of range 1..1000000", t.SustainSamples)
	case t.MaxImbalance != 0 && !(t.MaxImbalance >= 1 && t.MaxImbalance <= 1e6):
		return fmt.Errorf("max_imbalance_ratio %v must be 0 (off) or between 1 and 1000000", t.MaxImbalance)
	}
	return nil
}

// ParseThresholds reads a JSON config file's object over base: keys it
// names replace base's values, unknown keys are an error.
func ParseThresholds(r io.Reader, base Thresholds) (Thresholds, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return base, fmt.Errorf("read threshold config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	t := base
	if err := dec.Decode(&t); err != nil {
		return base, fmt.Errorf("threshold config: %w", err)
	}
	if dec.More() {
		return base, fmt.Errorf("threshold config: trailing data after the JSON object")
	}
	if err := t.Validate(); err != nil {
		return base, fmt.Errorf("threshold config: %w", err)
	}
	return t, nil
}

// LoadThresholds reads a config file (see ParseThresholds).
func LoadThresholds(path string, base Thresholds) (Thresholds, error) {
	f, err := os.Open(path)
	if err != nil {
		return base, fmt.Errorf("open threshold config: %w", err)
	}
	defer f.Close()
	return ParseThresholds(f, base)
}
