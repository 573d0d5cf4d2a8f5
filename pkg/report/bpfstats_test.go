package report

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestBPFStats: the first bpf_prog_stats frame of a stream is the
// variant's BPF table and its total_verified_insns metric; a stream
// without one has neither, and a kernel that reports no verified counts
// gives no metric.
func TestBPFStats(t *testing.T) {
	run := mustLoad(t, runDir("pass"))
	v := run.Variant("scx_simple/steady/tiny-1llc")
	if v.BPF == nil || len(v.BPF.Programs) != 3 || v.BPF.TotalVerifiedInsns != 5400 || v.BPF.Frames != 1 ||
		v.BPF.Scheduler != "scx_simple" || v.BPF.SelectedBy != "fd" || v.BPF.Programs[1].Name != "simple_op1" {
		t.Fatalf("bpf %+v", v.BPF)
	}
	if got := v.Metrics[MetricVerifiedInsns]; got != 5400 {
		t.Errorf("%s = %v", MetricVerifiedInsns, got)
	}
	if rows := v.BPF.Rows(); rows[0].Load != "-5ms" || rows[2].Load != "-3ms" || rows[1].Insns != "3400" || rows[1].Jited != "27200 B" {
		t.Errorf("rows %+v", rows)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, run); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Variants []struct {
			Variant string    `json:"variant"`
			BPF     *BPFStats `json:"bpf"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Variants[0].BPF == nil || back.Variants[0].BPF.TotalVerifiedInsns == 0 {
		t.Errorf("JSON bpf: %v %+v", err, back.Variants)
	}

	mixed := mustLoad(t, runDir("mixed"))
	e := mixed.Variant("eevdf/steady/tiny-1llc")
	if _, ok := e.Metrics[MetricVerifiedInsns]; ok || e.BPF != nil {
		t.Errorf("a stream without bpf_prog_stats: %+v %v", e.BPF, e.Metrics)
	}

	// Two frames (the first is kept), a kernel without verified counts,
	// more programs than are kept.
	for _, c := range []struct {
		name    string
		frames  []wire.BPFProgStats
		total   uint64
		metric  bool
		omitted int
	}{
		{"two frames", []wire.BPFProgStats{{Scheduler: "a", Programs: []wire.BPFProg{{Name: "x", VerifiedInsns: 7}}},
			{Scheduler: "b", Programs: []wire.BPFProg{{Name: "y", VerifiedInsns: 9}}}}, 7, true, 0},
		{"no counts", []wire.BPFProgStats{{Scheduler: "a", Programs: []wire.BPFProg{{Name: "x"}, {Name: "y"}}}}, 0, false, 0},
		{"huge", []wire.BPFProgStats{{Scheduler: "a", Programs: make([]wire.BPFProg, maxBPFProgs+5)}}, 0, false, 5},
	} {
		var sd streamData
		for i := range c.frames {
			var b bytes.Buffer
			wire.NewEncoder(&b).Encode(c.frames[i])
			f, err := wire.NewDecoder(&b).Next()
			if err != nil {
				t.Fatal(err)
			}
			sd.frame(f)
		}
		m := map[string]float64{}
		sd.bpf.metrics(m)
		st := sd.bpf.result()
		if _, ok := m[MetricVerifiedInsns]; ok != c.metric || st.TotalVerifiedInsns != c.total || st.Frames != len(c.frames) ||
			st.Omitted != c.omitted || st.Scheduler != "a" || len(st.Programs) > maxBPFProgs {
			t.Errorf("%s: metric %v, %+v", c.name, m, st)
		}
	}
}

// TestCompareVerifiedInsns: compare gates total_verified_insns (lower is
// better): growth past both gates is a regression, a shrink an
// improvement, a change under a gate nothing; --abs moves the gate.
func TestCompareVerifiedInsns(t *testing.T) {
	name := "scx_simple/steady/tiny-1llc"
	run := func(insns ...uint32) *Run {
		dir := filepath.Join(t.TempDir(), "r")
		writeFixtureRun(t, dir, []string{name}, []variantSpec{{name: name, stream: &streamSpec{bpf: insns}}})
		return mustLoad(t, dir)
	}
	a := run(1000, 2000)
	for _, c := range []struct {
		b     *Run
		gates Gates
		want  string // "regression", "improvement", ""
	}{
		{run(1000, 2300), Gates{}, "regression"},   // +300, +10%
		{run(1000, 1700), Gates{}, "improvement"},  // -300
		{run(1000, 2050), Gates{}, ""},             // +50: under the absolute gate
		{run(10000, 20000), Gates{}, "regression"}, // a kernel whose verifier works harder
		{run(1000, 2300), Gates{Abs: map[string]float64{MetricVerifiedInsns: 500}}, ""},
		{run(1000, 2300), Gates{Rel: map[string]float64{MetricVerifiedInsns: 0.2}}, ""},
	} {
		cmp := Compare(a, c.b, c.gates)
		got := ""
		for _, f := range cmp.Findings {
			if f.Metric == MetricVerifiedInsns {
				got = "improvement"
				if f.Regression {
					got = "regression"
				}
			}
		}
		if got != c.want || cmp.Regressed() != (c.want == "regression") {
			t.Errorf("B %v, gates %+v: %q (regressed %v), want %q", c.b.Variants[0].Metrics[MetricVerifiedInsns], c.gates, got, cmp.Regressed(), c.want)
		}
		if c.want == "regression" {
			var txt bytes.Buffer
			cmp.WriteText(&txt)
			if !strings.Contains(txt.String(), name+"  "+MetricVerifiedInsns) {
				t.Errorf("compare text lacks the finding:\n%s", txt.String())
			}
		}
	}
	if name, x, err := ParseGate(MetricVerifiedInsns+"=10", true); err != nil || name != MetricVerifiedInsns || x != 0.1 {
		t.Errorf("ParseGate: %s %v %v", name, x, err)
	}
}
