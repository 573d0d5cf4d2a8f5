package qemu

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
)

// rdtsc reads the host's time-stamp counter (rdtsc_amd64.s).
func rdtsc() uint64

var (
	tscOnce sync.Once
	tscKHz  uint64
)

// HostTSCkHz measures the host's TSC frequency in kHz (0 when it cannot).
//
// Why: QEMU TCG's guest TSC is the host's TSC, but a TCG guest cannot
// calibrate it reliably when the host is loaded (no HPET or PM timer on
// microvm, and the PIT loop is descheduled): the fixture kernel then marks
// the TSC unstable and stalls for minutes in early boot. Measured on the
// 2-core machine at load 9: L1 stuck >130 s after "Marking TSC unstable";
// with tsc_early_khz set from this measurement it reached init in 4 s.
func HostTSCkHz() uint64 {
	tscOnce.Do(func() {
		if runtime.GOARCH != "amd64" {
			return
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// Several 20 ms windows; the median is robust against one window
		// disturbed by preemption between the clock and counter reads.
		var rates []float64
		for i := 0; i < 5; i++ {
			t0, c0 := time.Now(), rdtsc()
			time.Sleep(20 * time.Millisecond)
			t1, c1 := time.Now(), rdtsc()
			if d := t1.Sub(t0); d > 0 && c1 > c0 {
				rates = append(rates, float64(c1-c0)/float64(d.Microseconds())*1000)
			}
		}
		if len(rates) < 3 {
			return
		}
		for i := range rates { // insertion sort: five values
			for j := i; j > 0 && rates[j] < rates[j-1]; j-- {
				rates[j], rates[j-1] = rates[j-1], rates[j]
			}
		}
		k := rates[len(rates)/2]
		if k > 1e5 && k < 1e8 && !math.IsNaN(k) {
			// Round to 1 MHz: TSCs tick at round frequencies and the
			// measurement is good to far better than that.
			tscKHz = uint64(math.Round(k/1000)) * 1000
		}
	})
	return tscKHz
}

// TCGTimeCmdline returns the command-line options that let a kernel under
// QEMU TCG skip TSC calibration ("tsc_early_khz=N tsc=reliable"), or ""
// when the host TSC could not be measured.
func TCGTimeCmdline() string {
	if k := HostTSCkHz(); k != 0 {
		return fmt.Sprintf("tsc_early_khz=%d tsc=reliable", k)
	}
	return ""
}
