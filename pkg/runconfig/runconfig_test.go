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
