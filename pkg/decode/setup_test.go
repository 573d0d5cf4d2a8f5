package decode

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestSummarySetup: the vm_start frame's set-up time shows on its line
// and in --summary, text and JSON; a frame with absurdly many phases is
// cut to maxSetupPhases.
func TestSummarySetup(t *testing.T) {
	var b bytes.Buffer
	h := wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost))
	h.Encode(wire.VMStart{VMM: "ktstr-boot", VCPUs: 1, MemorySize: 1 << 30, SetupNS: 8_500_000,
		SetupPhases: []wire.SetupPhase{{Name: "args", NS: 250_000}, {Name: "load_wait", NS: 8_250_000}, {Name: "load_initramfs", NS: 9_000_000, Concurrent: true}}})
	h.Encode(wire.VMExit{Reason: "poweroff"})
	text, _, err := render(t, b.Bytes(), Options{Summary: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "setup=8.500ms") {
		t.Errorf("vm_start line lacks setup=8.500ms:\n%s", text)
	}
	if !strings.Contains(text, "  setup: 8.500ms to the first KVM_RUN: args=0.250ms load_wait=8.250ms load_initramfs=9.000ms(concurrent)\n") {
		t.Errorf("summary lacks the setup line:\n%s", text)
	}
	js, _, err := render(t, b.Bytes(), Options{Format: JSON, Quiet: true, Summary: true})
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(js, "\n")
	var s struct{ Summary Summary }
	if err := json.Unmarshal([]byte(first), &s); err != nil {
		t.Fatal(err)
	}
	if s.Summary.SetupNS != 8_500_000 || len(s.Summary.SetupPhases) != 3 || !s.Summary.SetupPhases[2].Concurrent {
		t.Errorf("JSON summary setup: %+v", s.Summary)
	}

	// A forged frame with many phases.
	b.Reset()
	many := make([]wire.SetupPhase, 10*maxSetupPhases)
	for i := range many {
		many[i] = wire.SetupPhase{Name: "x y", NS: 1}
	}
	wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost)).Encode(wire.VMStart{SetupNS: 1, SetupPhases: many})
	js, _, err = render(t, b.Bytes(), Options{Format: JSON, Quiet: true, Summary: true})
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ = strings.Cut(js, "\n")
	if err := json.Unmarshal([]byte(first), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Summary.SetupPhases) != maxSetupPhases {
		t.Errorf("kept %d phases, want %d", len(s.Summary.SetupPhases), maxSetupPhases)
	}
}
