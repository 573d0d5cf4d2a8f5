package kvmprobe

import "testing"

// TestHostRate logs the host loop's speed on this machine (the
// denominator of the probe's ratio), for the README's figures.
func TestHostRate(t *testing.T) {
	n := uint32(20_000_000)
	var r []float64
	for i := 0; i < 5; i++ {
		r = append(r, float64(n)/timeHost(n).Seconds())
	}
	t.Logf("host dec/jnz loop: median %.0f M iterations/s (%v)", median(r)/1e6, r)
}
