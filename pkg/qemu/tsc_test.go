package qemu

import (
	"runtime"
	"strings"
	"testing"
)

func TestHostTSCkHz(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("SKIP: TSC measurement is amd64 only")
	}
	k := HostTSCkHz()
	if k < 500_000 || k > 10_000_000 || k%1000 != 0 {
		t.Fatalf("host TSC %d kHz: outside 0.5..10 GHz or not rounded to MHz", k)
	}
	if c := TCGTimeCmdline(); !strings.HasPrefix(c, "tsc_early_khz=") {
		t.Errorf("TCGTimeCmdline() = %q", c)
	}
	t.Logf("host TSC %d kHz", k)
}
