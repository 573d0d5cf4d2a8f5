//go:build amd64

package probe

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

func TestRawEventLayout(t *testing.T) {
	// The hand-written rawEvent must be struct event of bpf/recorder.h, as
	// bpf2go read it from the object's BTF: same fields, same sizes.
	got, want := reflect.TypeOf(rawEvent{}), reflect.TypeOf(bpfEvent{})
	if binary.Size(rawEvent{}) != binary.Size(bpfEvent{}) {
		t.Fatalf("rawEvent is %d bytes, struct event %d", binary.Size(rawEvent{}), binary.Size(bpfEvent{}))
	}
	j := 0
	for i := range want.NumField() {
		wf := want.Field(i)
		if wf.Name == "_" {
			continue
		}
		gf := got.Field(j)
		j++
		if !strings.EqualFold(strings.ReplaceAll(gf.Name, "ID", "Id"), wf.Name) || gf.Type.Size() != wf.Type.Size() {
			t.Errorf("field %d: %s (%d bytes), struct event has %s (%d bytes)", j, gf.Name, gf.Type.Size(), wf.Name, wf.Type.Size())
		}
	}
	if j != got.NumField() {
		t.Errorf("rawEvent has %d fields, struct event %d", got.NumField(), j)
	}
}
