package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Exit statuses on the recorded streams in pkg/monitor/testdata.
func TestExitCodes(t *testing.T) {
	t.Setenv("KTSTR_VMLINUX", "") // frames-only: no kernel needed
	td := filepath.Join("..", "..", "pkg", "monitor", "testdata")
	cfg := filepath.Join(t.TempDir(), "th.json")
	os.WriteFile(cfg, []byte(`{"sustain_samples": 50}`), 0o600)
	empty := filepath.Join(t.TempDir(), "empty.ktstr")
	os.WriteFile(empty, nil, 0o600)
	var hostOnly, frozen bytes.Buffer
	h := wire.NewEncoder(&hostOnly, wire.WithFlags(wire.FlagHost))
	h.Encode(wire.VMStart{VMM: "ktstr-boot", VCPUs: 1})
	h.Encode(wire.VMExit{Reason: "timeout", ExitCode: 124})
	hostOnlyP := filepath.Join(t.TempDir(), "hostonly.ktstr")
	os.WriteFile(hostOnlyP, hostOnly.Bytes(), 0o600)
	// A guest that said hello, then samples whose runqueue clocks never
	// move (a guest hung from the start): not "OK".
	g := wire.NewEncoder(&frozen)
	fh := wire.NewEncoder(&frozen, wire.WithFlags(wire.FlagHost))
	g.Encode(wire.GuestReady{Kernel: "6.12"})
	for i := 0; i < 20; i++ {
		fh.Encode(wire.MonitorSample{Seq: uint64(i), CPUs: []wire.CPUSample{{CPU: 0, ClockNS: 5e9}}})
	}
	frozenP := filepath.Join(t.TempDir(), "frozen.ktstr")
	os.WriteFile(frozenP, frozen.Bytes(), 0o600)
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{filepath.Join(td, "clean.ktstr")}, 0, ""},
		{[]string{filepath.Join(td, "stall.ktstr")}, 1, "1 violation(s)"},
		{[]string{"--config", cfg, filepath.Join(td, "stall.ktstr")}, 0, ""},
		{[]string{"--config", cfg, "--sustain-samples", "5", filepath.Join(td, "stall.ktstr")}, 1, "violation"},
		{[]string{"--no-stall", filepath.Join(td, "stall.ktstr")}, 0, ""},
		{[]string{filepath.Join(td, "schedexit.ktstr")}, 1, "2 violation(s)"},
		{[]string{filepath.Join(td, "corrupt.ktstr")}, 2, "corrupt or truncated"},
		{[]string{empty}, 3, "no verdict: empty stream"},
		{[]string{hostOnlyP}, 3, "no verdict: no frame from the guest"},
		{[]string{frozenP}, 3, "no verdict: no runqueue clock advanced in 20 samples"},
		{[]string{filepath.Join(td, "missing.ktstr")}, 2, "open stream"},
		{[]string{"a", "b"}, 2, "at most one STREAM"},
		{[]string{"--sustain-samples", "0", filepath.Join(td, "clean.ktstr")}, 2, "sustain_samples"},
		{[]string{"--dump-keys", "xy", filepath.Join(td, "clean.ktstr")}, 2, "--dump-keys"},
		{[]string{"--guest-mem", "/nonexistent", filepath.Join(td, "clean.ktstr")}, 2, "needs --vmlinux"},
		{[]string{"--guest-mem-layout", "1:2", filepath.Join(td, "clean.ktstr")}, 2, "GPA:SIZE:OFFSET"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
	}
	// Reports go to stdout: silence it for the test run.
	stdout := os.Stdout
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	os.Stdout = devnull
	defer func() { os.Stdout = stdout; devnull.Close() }()
	for _, tc := range tests {
		var stderr strings.Builder
		code := cmdutil.Run(newApp(), append([]string{"ktstr-monitor"}, tc.args...), &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
}

func TestParseLayout(t *testing.T) {
	r, err := parseLayout("0:0xc0000000:0,0x100000000:0x40000000:0xc0000000")
	if err != nil || len(r) != 2 || r[1].GPA != 1<<32 || r[1].Offset != 0xc0000000 {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "1:2", "x:1:2", "1:2:3:4"} {
		if _, err := parseLayout(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
