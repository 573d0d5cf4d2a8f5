package decode

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestSummaryIsBounded: a stream that repeats cgroup_metrics without end
// must not grow the summary without end.
func TestSummaryIsBounded(t *testing.T) {
	var b bytes.Buffer
	e := wire.NewEncoder(&b)
	for i := 0; i < maxSummaryItems+5; i++ {
		e.Encode(wire.CgroupMetrics{Step: i, Cgroup: "cg0"})
	}
	e.Encode(wire.CheckResult{Name: "starvation", Pass: false})
	out, _, err := render(t, b.Bytes(), Options{Format: JSON, Quiet: true, Summary: true})
	if err != nil {
		t.Fatal(err)
	}
	first, last, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(last, `{"verdict":{"result":"fail","reason":"check starvation failed`) {
		t.Fatalf("verdict line after the summary: %q", last)
	}
	var s struct{ Summary Summary }
	if err := json.Unmarshal([]byte(first), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Summary.Cgroups) != maxSummaryItems || s.Summary.Omitted != 5 || s.Summary.Failed != 1 || len(s.Summary.Checks) != 1 {
		t.Fatalf("summary kept %d cgroups, omitted %d, %d failed checks", len(s.Summary.Cgroups), s.Summary.Omitted, s.Summary.Failed)
	}
	text, _, _ := render(t, b.Bytes(), Options{Quiet: true, Summary: true})
	if !strings.HasSuffix(text, "  checks: 0 passed, 1 failed\n    FAIL starvation observed=0 threshold=0 step=0\n  5 more items omitted (over 10000 per list)\n"+
		"verdict: FAIL kernel=? scheduler=? scenario=? topology=?: check starvation failed: observed 0, threshold 0 (step 0)\n") {
		t.Fatalf("text summary ends %q", text[len(text)-200:])
	}
}

// TestTimeBaseIgnoresFilter: relative times count from the first frame of
// each origin whether or not the filter shows it.
func TestTimeBaseIgnoresFilter(t *testing.T) {
	var b bytes.Buffer
	g := wire.NewEncoder(&b, wire.WithClock(stepClock(10e9, 1e9)))
	h := wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost), wire.WithClock(stepClock(5, 5e8)))
	g.Encode(wire.Log{Text: "a"})
	h.Encode(wire.MonitorSample{})
	g.Encode(wire.Phase{Phase: "x"})
	h.Encode(wire.VMExit{Reason: "poweroff"})
	out, _, err := render(t, b.Bytes(), Options{Filter: mustFilter(t, "phase,vm_exit")})
	if err != nil {
		t.Fatal(err)
	}
	want := "  +1.000000 G phase          x\n  +0.500000 H vm_exit        reason=poweroff exit_code=0 wall=0.000s vcpus=0\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}
