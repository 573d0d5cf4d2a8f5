package kvmprobe

import (
	"os"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		ratio float64
		want  Kind
	}{
		{0, Emulated},
		{0.0008, Emulated}, // this project's emulated /dev/kvm
		{Threshold / 2, Emulated},
		{Threshold, Hardware},
		{0.6, Hardware}, // nested SVM under TCG
		{1.0, Hardware}, // hardware KVM
		{1.3, Hardware}, // guest faster than a preempted host loop
	} {
		if got := Decide(c.ratio); got != c.want {
			t.Errorf("Decide(%v) = %s, want %s", c.ratio, got, c.want)
		}
	}
}

func TestScaleAndMedian(t *testing.T) {
	for _, c := range []struct {
		n      uint32
		d      time.Duration
		want   uint32
		target time.Duration
	}{
		{1000, time.Millisecond, 10000, 10 * time.Millisecond},
		{1000, time.Second, 1000, 10 * time.Millisecond}, // never below n
		{1000, 0, 10_000_000, 10 * time.Millisecond},     // 0 counts as 1 µs
		{1 << 31, time.Nanosecond, 2e9, time.Second},
	} {
		if got := scale(c.n, c.d, c.target); got != c.want {
			t.Errorf("scale(%d, %v, %v) = %d, want %d", c.n, c.d, c.target, got, c.want)
		}
	}
	if m := median([]float64{5, 1, 3}); m != 3 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
}

func TestHostLoopTakesLonger(t *testing.T) {
	// The host loop must really run n iterations: 100x the work takes
	// clearly longer (best of 3 each, so a preemption cannot fake it).
	best := func(n uint32) time.Duration {
		b := time.Hour
		for i := 0; i < 3; i++ {
			b = min(b, timeHost(n))
		}
		return b
	}
	small, big := best(100_000), best(10_000_000)
	if big < 10*small {
		t.Errorf("10 M iterations took %v, 100 k took %v: the loop is not running", big, small)
	}
}

// TestProbe runs the probe on this machine's /dev/kvm and checks that the
// verdict follows from the evidence.
func TestProbe(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("SKIP: no /dev/kvm on this machine: %v", err)
	}
	r := Probe(Options{})
	t.Logf("probe: %s: %s (%s; guest %d, host %d iterations per run; KVM_CREATE_VM %v)", r.Kind, r.Reason, r.Evidence(), r.GuestIter, r.HostIter, r.CreateVM)
	switch r.Kind {
	case None:
		t.Fatalf("probe failed on an existing /dev/kvm: %s", r.Reason)
	case Hardware, Emulated:
		if r.GuestRate <= 0 || r.HostRate <= 0 || r.Ratio != r.GuestRate/r.HostRate || Decide(r.Ratio) != r.Kind {
			t.Errorf("verdict does not follow from the evidence: %+v", r)
		}
	}
}

func TestProbeMissing(t *testing.T) {
	r := Probe(Options{Device: "/nonexistent/kvm"})
	if r.Kind != None || r.Reason == "" || r.Hardware() {
		t.Errorf("probe of a missing device: %+v", r)
	}
	r = Probe(Options{Device: "/dev/null"})
	if r.Kind != None {
		t.Errorf("probe of /dev/null: %+v", r)
	}
}
