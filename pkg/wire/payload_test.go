package wire

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckPayload pins man/ktstr-stream.5's definition of a bad payload,
// the one ktstr-decode and ktstr-monitor share.
func TestCheckPayload(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxJSONDepth) + `1` + strings.Repeat(`}`, MaxJSONDepth)
	tooDeep := strings.Repeat(`[`, MaxJSONDepth+1) + strings.Repeat(`]`, MaxJSONDepth+1)
	tests := []struct {
		t    Type
		p    string
		want string // "" for a good payload, else a part of the reason
	}{
		{TypePhase, `{"phase":"x"}`, ""},
		{TypePhase, ` {"phase":"x","new_field":[1,{"z":null}]} `, ""},
		{TypePhase, `{"phase":null}`, ""}, // null is absent
		{TypePhase, `{"phase":7}`, "field phase is a JSON number, want a string"},
		{TypePhase, `[]`, "not an object"},
		{TypePhase, "{\"phase\":\"\xff\"}", "invalid JSON at byte 10"},
		{TypePhase, `{"phase":"\x"}`, "invalid JSON at byte 11"},
		{TypePhase, `{"phase":"x"} {}`, "invalid JSON at byte 14"},
		{TypeStimulus, `{"step":1.5}`, "field step is a JSON number 1.5, want an integer"},
		{TypeStimulus, `{"step":1e2}`, "want an integer"},
		{TypeStimulus, `{"step":-9223372036854775808}`, ""},
		{TypeStimulus, `{"step":9223372036854775808}`, "want an integer from -9223372036854775808 to 9223372036854775807"},
		{TypeStimulus, `{"elapsed_ms":-1}`, "want an integer from 0 to 18446744073709551615"},
		{TypeStimulus, `{"ops":[{"op":1}]}`, "field ops.op is a JSON number"},
		{TypeKernelSymbols, `{"symbols":{"_text":18446744071578845184}}`, ""},
		{TypeKernelSymbols, `{"symbols":{"_text":-1}}`, "want an integer from 0 to 18446744073709551615"},
		{TypeKernelSymbols, `{"symbols":{"_text":"0xffffffff81000000"}}`, "is a JSON string"},
		{TypeBPFProgStats, `{"scheduler":"s","selected_by":"fd","programs":[{"id":1,"name":"a","type":"StructOps","verified_insns":9,"load_time_ns":1,"load_offset_ns":-5}]}`, ""},
		{TypeBPFProgStats, `{"programs":[{"verified_insns":4294967296}]}`, "want an integer from 0 to 4294967295"},
		{TypeBPFProgStats, `{"programs":[{"load_offset_ns":-9223372036854775809}]}`, "want an integer from -9223372036854775808"},
		{TypeBPFProgStats, `{"programs":{"id":1}}`, "want an array"},
		{TypeBPFProgStats, `{"programs":[{"map_ids":[-1]}]}`, "want an integer from 0 to 4294967295"},
		{TypeCgroupMetrics, `{"spread_pct":1e400}`, "want a number"},
		{TypeCgroupMetrics, `{"spread_pct":1e-400}`, ""},
		{TypeCgroupMetrics, `{"spread_pct":-0.5e3,"weight":-0}`, ""},
		{TypeStimulus, `{"STEP":1}`, ""},
		{TypeStimulus, `{"STEP":"x"}`, "is a JSON string"}, // names match ignoring case
		{TypePhase, `{"phase":"a","phase":1}`, "is a JSON number"},
		{TypeMonitorSample, `{"cpus":[{"nr_running":4294967296}]}`, "want an integer from 0 to 4294967295"},
		{TypeMonitorSample, `{"cpus":[{"curr_pid":-2147483649}]}`, "from -2147483648 to 2147483647"},
		{TypeMonitorSample, `{"cpus":[{"preempted":1}]}`, "want true or false"},
		{TypeWorkerMetrics, `{"cpus":"0-3"}`, "field cpus is a JSON string, want an array"},
		{TypeWorkerMetrics, `{"exit_code":null}`, ""},
		{TypeViolation, `{"values":{"x":"y"}}`, "is a JSON string, want a number"},
		{TypeGuestReady, deep, ""},
		{TypeGuestReady, tooDeep, "JSON nested deeper than 10000 levels at byte 10000"},
		{TypeOutput, "\x01\x00\x00\x00\x00\x00\x00\x00", ""},
		{TypeOutput, "\x01\x07\x07\x07\x10\x00\x00\x00hi", ""}, // reserved bytes are ignored
		{TypeOutput, "\x03\x00\x00\x00\x00\x00\x00\x00", "stream id 3"},
		{TypeOutput, "\x01\x00\x00", "3 bytes, need at least 8"},
		{TypeGuestExit, "\x01\x00\x00\x00\x00", "5 bytes, want 4"},
		{TypeLog, "ok", ""},
		{TypeLog, "\xc3", "not UTF-8"},
		{0x0050, "anything \xff", ""}, // reserved types have no layout
		{0x8001, "anything \xff", ""},
	}
	for _, tc := range tests {
		err := CheckPayload(tc.t, []byte(tc.p))
		var pe *PayloadError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %.60q: %v, want good", tc.t, tc.p, err)
		case tc.want != "" && (!errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %.60q: %v, want a bad payload saying %q", tc.t, tc.p, err, tc.want)
		}
		if tc.t.Known() {
			if _, uerr := Unmarshal(tc.t, []byte(tc.p)); (uerr == nil) != (err == nil) {
				t.Errorf("%s %.60q: Unmarshal %v but CheckPayload %v", tc.t, tc.p, uerr, err)
			}
		}
	}
}
