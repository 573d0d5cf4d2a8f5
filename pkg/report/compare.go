package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Gates overrides the default gates of the Metrics table: Abs[name] is the
// absolute gate in the metric's unit, Rel[name] the relative gate as a
// fraction (0.10 = 10%). A metric absent from a map keeps its default.
type Gates struct {
	Abs map[string]float64
	Rel map[string]float64
}

// ParseGate parses METRIC=X as --abs and --rel take it: a metric of the
// Metrics table and a finite number X >= 0. With percent, X is a
// percentage (an optional trailing % is allowed) and the result a
// fraction.
func ParseGate(s string, percent bool) (string, float64, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return "", 0, fmt.Errorf("%q: want METRIC=NUMBER", s)
	}
	if _, ok := metricDef(name); !ok {
		var names []string
		for _, m := range Metrics() {
			names = append(names, m.Name)
		}
		return "", 0, fmt.Errorf("%q: unknown metric %q (metrics: %s)", s, name, strings.Join(names, ", "))
	}
	if percent {
		val = strings.TrimSuffix(val, "%")
	}
	x, err := strconv.ParseFloat(val, 64)
	if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return "", 0, fmt.Errorf("%q: %q is not a number >= 0", s, val)
	}
	if percent {
		x /= 100
	}
	return name, x, nil
}

// Finding is one metric of one variant whose change crossed both gates.
type Finding struct {
	Variant    string  `json:"variant"`
	Metric     string  `json:"metric"`
	Unit       string  `json:"unit"`
	A          float64 `json:"a"`
	B          float64 `json:"b"`
	Delta      float64 `json:"delta"`   // B - A
	RelPct     float64 `json:"rel_pct"` // |B-A|/|A| in percent; -1 when A is 0
	Regression bool    `json:"regression"`
}

// VerdictChange is a variant whose status differs between A and B. Any
// change away from pass is a regression, any change to pass an
// improvement.
type VerdictChange struct {
	Variant     string `json:"variant"`
	A           Status `json:"a"`
	B           Status `json:"b"`
	Reason      string `json:"reason"` // B's reason
	Regression  bool   `json:"regression"`
	Improvement bool   `json:"improvement"`
}

// Comparison is the result of Compare.
type Comparison struct {
	A        string          `json:"a"`
	B        string          `json:"b"`
	Findings []Finding       `json:"findings"`
	Verdicts []VerdictChange `json:"verdict_changes"`
	OnlyA    []string        `json:"only_in_a"`
	OnlyB    []string        `json:"only_in_b"`
	// Skipped counts variants in both runs whose metrics were not
	// compared because a side did not pass (its numbers describe a
	// broken run).
	Skipped      int `json:"skipped"`
	Unchanged    int `json:"unchanged"` // metric pairs compared that crossed no gate
	Regressions  int `json:"regressions"`
	Improvements int `json:"improvements"`
}

// Regressed reports whether B regressed against A: a metric regression or
// a variant that passed in A and not in B.
func (c *Comparison) Regressed() bool { return c.Regressions > 0 }

// Compare compares run B against run A, variant by variant (matched by
// name) and metric by metric. A change counts only when it crosses both
// gates: |B-A| >= abs and |B-A|/|A| >= rel (with A = 0 any change crosses
// the relative gate). Metrics are compared only for variants that passed
// in both runs, and only when both have the metric.
func Compare(a, b *Run, g Gates) *Comparison {
	c := &Comparison{A: a.Dir, B: b.Dir, Findings: []Finding{}, Verdicts: []VerdictChange{}, OnlyA: []string{}, OnlyB: []string{}}
	defs := Metrics()
	for i := range defs {
		if x, ok := g.Abs[defs[i].Name]; ok {
			defs[i].Abs = x
		}
		if x, ok := g.Rel[defs[i].Name]; ok {
			defs[i].Rel = x
		}
	}
	for _, va := range a.Variants {
		if b.Variant(va.Name) == nil {
			c.OnlyA = append(c.OnlyA, va.Name)
		}
	}
	for _, vb := range b.Variants {
		va := a.Variant(vb.Name)
		if va == nil {
			c.OnlyB = append(c.OnlyB, vb.Name)
			continue
		}
		if va.Status != vb.Status {
			vc := VerdictChange{Variant: vb.Name, A: va.Status, B: vb.Status, Reason: vb.Reason,
				Regression: va.Status == StatusPass, Improvement: vb.Status == StatusPass}
			if vc.Regression {
				c.Regressions++
			}
			if vc.Improvement {
				c.Improvements++
			}
			c.Verdicts = append(c.Verdicts, vc)
		}
		if va.Status != StatusPass || vb.Status != StatusPass {
			c.Skipped++
			continue
		}
		for _, d := range defs {
			x, okA := va.Metrics[d.Name]
			y, okB := vb.Metrics[d.Name]
			if !okA || !okB || (x == 0 && y == 0) {
				continue
			}
			f, significant := gate(d, x, y)
			if !significant {
				c.Unchanged++
				continue
			}
			f.Variant = vb.Name
			if f.Regression {
				c.Regressions++
			} else {
				c.Improvements++
			}
			c.Findings = append(c.Findings, f)
		}
	}
	// Regressions first, then by variant, in the table's metric order.
	sort.SliceStable(c.Findings, func(i, j int) bool {
		if c.Findings[i].Regression != c.Findings[j].Regression {
			return c.Findings[i].Regression
		}
		return c.Findings[i].Variant < c.Findings[j].Variant
	})
	return c
}

// gate applies d's two gates to a change from x to y.
func gate(d MetricDef, x, y float64) (Finding, bool) {
	delta := y - x
	rel := math.Inf(1)
	relPct := -1.0
	if x != 0 {
		rel = math.Abs(delta / x)
		relPct = rel * 100
	}
	if delta == 0 || math.Abs(delta) < d.Abs || rel < d.Rel {
		return Finding{}, false
	}
	worse := delta > 0
	if d.HigherBetter {
		worse = delta < 0
	}
	return Finding{Metric: d.Name, Unit: d.Unit, A: x, B: y, Delta: delta, RelPct: relPct, Regression: worse}, true
}

func num(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }

// WriteText writes the comparison as tables: regressions, improvements,
// verdict changes, variants in one run only, and a summary line.
func (c *Comparison) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	for _, regr := range []bool{true, false} {
		title := "regressions"
		if !regr {
			title = "improvements"
		}
		var rows []Finding
		for _, f := range c.Findings {
			if f.Regression == regr {
				rows = append(rows, f)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(ew, "%s:\n", title)
		tw := tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  VARIANT\tMETRIC\tA\tB\tDELTA\tREL")
		for _, f := range rows {
			rel := "new"
			if f.RelPct >= 0 {
				rel = fmt.Sprintf("%+.1f%%", math.Copysign(f.RelPct, f.Delta))
			}
			unit := ""
			if f.Unit != "" {
				unit = " " + f.Unit
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s%s\t%s%s\t%+.6g\t%s\n", oneLine(f.Variant), f.Metric, num(f.A), unit, num(f.B), unit, f.Delta, rel)
		}
		tw.Flush()
	}
	if len(c.Verdicts) > 0 {
		fmt.Fprintln(ew, "verdict changes:")
		for _, v := range c.Verdicts {
			kind := "changed"
			switch {
			case v.Regression:
				kind = "regression"
			case v.Improvement:
				kind = "improvement"
			}
			fmt.Fprintf(ew, "  %s: %s -> %s (%s): %s\n", oneLine(v.Variant), v.A, v.B, kind, oneLine(v.Reason))
		}
	}
	for _, s := range c.OnlyA {
		fmt.Fprintf(ew, "only in A: %s\n", oneLine(s))
	}
	for _, s := range c.OnlyB {
		fmt.Fprintf(ew, "only in B: %s\n", oneLine(s))
	}
	fmt.Fprintf(ew, "compare: %d regressions, %d improvements, %d unchanged metrics, %d variants not compared (not a pass on both sides), %d only in A, %d only in B\n",
		c.Regressions, c.Improvements, c.Unchanged, c.Skipped, len(c.OnlyA), len(c.OnlyB))
	return ew.err
}

// WriteJSON writes the comparison as one indented JSON object.
func (c *Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}
