package guest

import (
	"reflect"
	"testing"
)

// TestProbeOverride: only ktstr.probe turns the auto-repro probes on; a
// command line without it leaves them off (nothing is attached).
func TestProbeOverride(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		on      bool
		funcs   []string
		ok      bool
	}{
		{"console=ttyS0 ktstr.hold=100", false, nil, true},
		{"ktstr.probe=1", true, nil, true},
		{"ktstr.probe=balance_one,scx_ops_bypass", true, []string{"balance_one", "scx_ops_bypass"}, true},
		{"ktstr.probe=", false, nil, false},
		{"ktstr.probe=a/b", false, nil, false},
	} {
		o, err := ParseOverrides(c.cmdline)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v", c.cmdline, err)
			continue
		}
		if err != nil {
			continue
		}
		if o.Probe != c.on || !reflect.DeepEqual(o.ProbeFuncs, c.funcs) || len(o.Unknown) != 0 {
			t.Errorf("%q: probe %v %q unknown %q", c.cmdline, o.Probe, o.ProbeFuncs, o.Unknown)
		}
		p, err := makePlan(o)
		if err == nil && p.probe != c.on {
			t.Errorf("%q: plan.probe %v", c.cmdline, p.probe)
		}
	}
}
