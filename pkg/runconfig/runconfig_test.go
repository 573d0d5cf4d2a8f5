package runconfig

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTripAndDeterminism(t *testing.T) {
	c := &Config{Scheduler: &Scheduler{Name: "scx_simple", Path: SchedulerPath, Args: []string{"-v"}},
		Scenario: ScenarioPath, Env: map[string]string{"B": "2", "A": "1"}}
	a, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Marshal(c)
	if !bytes.Equal(a, b) || !strings.Contains(string(a), `"A": "1",`) {
		t.Fatalf("not deterministic or unsorted:\n%s", a)
	}
	got, err := Unmarshal(a)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %v %#v", err, got)
	}
	if _, err := Unmarshal([]byte(`{"version": 99}`)); err == nil {
		t.Fatal("accepted a future version")
	}
}

func TestExecCmdline(t *testing.T) {
	for _, cmd := range []string{"echo hi; exit 3", "x", "quote ' \" and = and spaces  \n newline", "\x00\xff"} {
		w := ExecCmdline(cmd)
		v, ok := strings.CutPrefix(w, ExecKey+"=")
		if !ok || strings.ContainsAny(v, " \t\n") {
			t.Fatalf("ExecCmdline(%q) = %q: not one command-line word", cmd, w)
		}
		got, err := DecodeExec(v)
		if err != nil || got != cmd {
			t.Errorf("DecodeExec(%q) = %q, %v; want %q", v, got, err, cmd)
		}
	}
	for _, bad := range []string{"", "!!!", "ZW"} {
		if _, err := DecodeExec(bad); err == nil {
			t.Errorf("DecodeExec(%q) accepted", bad)
		}
	}
	if ShellCmdline() != "ktstr.mode=shell" {
		t.Errorf("ShellCmdline() = %q", ShellCmdline())
	}
}
