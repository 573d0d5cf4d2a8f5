package report

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func def(t *testing.T, name string) MetricDef {
	t.Helper()
	d, ok := metricDef(name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	return d
}

// TestGate: a change counts only when it crosses both the absolute and the
// relative gate, in the metric's direction.
func TestGate(t *testing.T) {
	cases := []struct {
		name        string
		metric      string
		a, b        float64
		significant bool
		regression  bool
	}{
		// total_iterations: higher better, abs 100, rel 10%.
		{"both crossed, down", MetricIterations, 10000, 8000, true, true},
		{"both crossed, up", MetricIterations, 10000, 12000, true, false},
		{"abs only (rel 5%)", MetricIterations, 10000, 9500, false, false},
		{"rel only (abs 50)", MetricIterations, 200, 150, false, false},
		{"exactly at both gates", MetricIterations, 1000, 900, true, true},
		{"unchanged", MetricIterations, 1000, 1000, false, false},
		// worst_p99_wake_latency_us: lower better, abs 50, rel 25%.
		{"latency up", MetricWakeP99, 100, 200, true, true},
		{"latency down", MetricWakeP99, 200, 100, true, false},
		{"latency up 40us", MetricWakeP99, 100, 140, false, false},
		{"latency from 0", MetricWakeP99, 0, 60, true, true},
		{"latency from 0, under abs", MetricWakeP99, 0, 40, false, false},
		// worst_spread: lower better, abs 5, rel 25%.
		{"spread 4 -> 12", MetricSpread, 4, 12, true, true},
		{"spread 30 -> 36 (20%)", MetricSpread, 30, 36, false, false},
		// wall_s: lower better, abs 5 s, rel 25%.
		{"wall 20 -> 30", MetricWall, 20, 30, true, true},
		{"wall 100 -> 110", MetricWall, 100, 110, false, false},
	}
	for _, c := range cases {
		f, sig := gate(def(t, c.metric), c.a, c.b)
		if sig != c.significant || (sig && f.Regression != c.regression) {
			t.Errorf("%s: %s %v -> %v: significant %v regression %v, want %v %v", c.name, c.metric, c.a, c.b, sig, f.Regression, c.significant, c.regression)
		}
	}
}

func TestParseGate(t *testing.T) {
	cases := []struct {
		in      string
		percent bool
		name    string
		val     float64
		err     string
	}{
		{"wall_s=2", false, MetricWall, 2, ""},
		{"total_iterations=5", true, MetricIterations, 0.05, ""},
		{"total_iterations=5%", true, MetricIterations, 0.05, ""},
		{"worst_spread=0", false, MetricSpread, 0, ""},
		{"nope=1", false, "", 0, "unknown metric"},
		{"wall_s", false, "", 0, "want METRIC=NUMBER"},
		{"=1", false, "", 0, "want METRIC=NUMBER"},
		{"wall_s=-1", false, "", 0, "not a number >= 0"},
		{"wall_s=NaN", false, "", 0, "not a number >= 0"},
		{"wall_s=Inf", false, "", 0, "not a number >= 0"},
		{"wall_s=1x", false, "", 0, "not a number >= 0"},
		{"wall_s=5%", false, "", 0, "not a number >= 0"},
	}
	for _, c := range cases {
		name, val, err := ParseGate(c.in, c.percent)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want error %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || name != c.name || math.Abs(val-c.val) > 1e-12 {
			t.Errorf("%q: %s %v %v, want %s %v", c.in, name, val, err, c.name, c.val)
		}
	}
}

func TestCompareRuns(t *testing.T) {
	a, b := mustLoad(t, runDir("pass")), mustLoad(t, runDir("slower"))
	c := Compare(a, b, Gates{})
	if !c.Regressed() {
		t.Fatal("slower against pass: no regression")
	}
	got := map[string]bool{}
	for _, f := range c.Findings {
		got[f.Variant+" "+f.Metric] = f.Regression
	}
	want := map[string]bool{
		"scx_simple/steady/tiny-1llc " + MetricIterations:    true,
		"scx_simple/steady/tiny-1llc " + MetricIterPerWorker: true,
		"scx_simple/steady/tiny-1llc " + MetricWakeP99:       true,
		"scx_simple/steady/tiny-1llc " + MetricWakeP50:       true,
	}
	if len(got) != len(want) {
		t.Errorf("findings %v, want %v", got, want)
	}
	for k, r := range want {
		if g, ok := got[k]; !ok || g != r {
			t.Errorf("%s: found %v regression %v, want regression %v", k, ok, g, r)
		}
	}
	if len(c.Verdicts) != 1 || c.Verdicts[0].Variant != "scx_simple/mixed/tiny-1llc" || !c.Verdicts[0].Regression ||
		c.Verdicts[0].A != StatusPass || c.Verdicts[0].B != StatusFail {
		t.Errorf("verdict changes %+v", c.Verdicts)
	}
	if c.Regressions != 5 || c.Improvements != 0 || c.Skipped != 1 {
		t.Errorf("regressions %d improvements %d skipped %d", c.Regressions, c.Improvements, c.Skipped)
	}

	// The other way round: improvements, the fixed variant among them.
	r := Compare(b, a, Gates{})
	if r.Regressed() || r.Improvements != 5 {
		t.Errorf("pass against slower: %d regressions, %d improvements", r.Regressions, r.Improvements)
	}

	// A wide enough gate hides the metric regressions; the verdict stays.
	g := Gates{Rel: map[string]float64{MetricIterations: 0.9, MetricIterPerWorker: 0.9}, Abs: map[string]float64{MetricWakeP99: 1000, MetricWakeP50: 1000}}
	if w := Compare(a, b, g); w.Regressions != 1 || len(w.Findings) != 0 {
		t.Errorf("wide gates: %d regressions, findings %+v", w.Regressions, w.Findings)
	}

	// Same run: nothing.
	if s := Compare(a, a, Gates{}); s.Regressions+s.Improvements != 0 || s.Unchanged == 0 {
		t.Errorf("a against itself: %+v", s)
	}

	var txt bytes.Buffer
	if err := c.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"regressions:\n", "scx_simple/steady/tiny-1llc  total_iterations", "-59.9%",
		"scx_simple/mixed/tiny-1llc: pass -> fail (regression): check starvation failed",
		"compare: 5 regressions, 0 improvements"} {
		if !strings.Contains(txt.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, txt.String())
		}
	}
	var js bytes.Buffer
	if err := c.WriteJSON(&js); err != nil || !json.Valid(js.Bytes()) {
		t.Errorf("JSON: %v", err)
	}
}

func TestCompareOnlyOneSide(t *testing.T) {
	a, m := mustLoad(t, runDir("pass")), mustLoad(t, runDir("mixed"))
	c := Compare(a, m, Gates{})
	if len(c.OnlyA) != 3 || len(c.OnlyB) != 7 || c.Regressed() {
		t.Errorf("only A %v, only B %v, regressions %d", c.OnlyA, c.OnlyB, c.Regressions)
	}
}
