package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzTypedOK holds the fast type check to its promise: whatever it
// accepts, encoding/json's Unmarshal into the message struct accepts too,
// and CheckPayload (fast check, else Unmarshal) agrees with Unmarshal.
func FuzzTypedOK(f *testing.F) {
	for _, m := range sampleMessages() {
		if b, err := Marshal(m); err == nil && m.MsgType().IsJSON() {
			f.Add(uint8(m.MsgType()), b)
		}
	}
	for _, s := range []string{`{"cpus":[{"cpu":1,"CPU":"x"}]}`, `{"symbols":{"a":-0}}`, `{"step":1e2,"Step":1}`,
		`{"spread_pct":1e400}`, `{"cpus":[1,null,2]}`, `{"x":{"y":[1,{"z":"\u00e9"}]}}`, `{"phase":"a","phase":1}`,
		`{"programs":[{"id":1,"ID":"x"}]}`, `{"programs":[{"load_offset_ns":-1e3}]}`} {
		for _, t := range []Type{TypeMonitorSample, TypeKernelSymbols, TypeBPFProgStats, TypeStimulus, TypeCgroupMetrics, TypeWorkerMetrics, TypePhase} {
			f.Add(uint8(t), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ty uint8, b []byte) {
		typ := Type(ty)
		sh := jsonShapes[typ]
		if sh == nil || checkJSONObject(typ, b) != nil {
			return
		}
		v := reflect.New(reflect.TypeOf(deref(mustZero(typ)))).Interface()
		uerr := json.Unmarshal(b, v)
		if typedOK(sh, b) && uerr != nil {
			t.Fatalf("%s %q: fast check accepts, Unmarshal says %v", typ, b, uerr)
		}
		if cerr := CheckPayload(typ, b); (cerr == nil) != (uerr == nil) {
			t.Fatalf("%s %q: CheckPayload %v, Unmarshal %v", typ, b, cerr, uerr)
		}
	})
}

func mustZero(t Type) Message {
	for _, m := range sampleMessages() {
		if m.MsgType() == t {
			return m
		}
	}
	panic(t)
}

func TestTypedOKFastPath(t *testing.T) {
	// ktstr's own payloads take the fast path.
	for _, m := range sampleMessages() {
		if !m.MsgType().IsJSON() {
			continue
		}
		b, _ := Marshal(m)
		if !typedOK(jsonShapes[m.MsgType()], b) {
			t.Errorf("%s %s: not accepted by the fast check", m.MsgType(), b)
		}
	}
}
