package decode

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// FuzzValidJSON checks validJSON against encoding/json: it must accept
// exactly the documents json.Valid accepts whose bytes are valid UTF-8.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2.5e-3,-0,true,false,null,"\u00e9\n"]}`, ` [ ] `, `01`, `1.`, `-`, `"\x"`,
		`{"a" 1}`, `[1,]`, "\"\xff\"", `"\ud800"`, `nul`, `{"a":{"b":{}}}`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := validJSON(b) < 0
		want := json.Valid(b) && utf8.Valid(b)
		if got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid && utf8.Valid = %v", b, got, want)
		}
	})
}

// checkRecords checks that text and JSON output of the same stream are
// well formed: one record per line, the same number of records, every
// JSON line one valid object, every text line valid UTF-8.
func checkRecords(t *testing.T, text, js string) {
	t.Helper()
	if !strings.HasSuffix(text, "\n") && text != "" || !strings.HasSuffix(js, "\n") && js != "" {
		t.Fatalf("output does not end in a newline")
	}
	tl := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	jl := strings.Split(strings.TrimSuffix(js, "\n"), "\n")
	if js == "" {
		if text != "" {
			t.Fatalf("text records without JSON records:\n%s", text)
		}
		return
	}
	// Each JSON record is one frame or diagnostic; its text record is one
	// line, or, for output and log text of several lines, one line per
	// line of text, each repeating the first one's prefix (time, origin,
	// type column).
	at := 0
	for i, l := range jl {
		var rec struct {
			Diagnostic *string `json:"diagnostic"`
			Type       string  `json:"type"`
			Error      string  `json:"error"`
			Payload    struct {
				Text *string `json:"text"`
				Data []byte  `json:"data_b64"`
			} `json:"payload"`
		}
		if !utf8.ValidString(l) || json.Unmarshal([]byte(l), &rec) != nil {
			t.Fatalf("JSON record %d is not one valid UTF-8 JSON object: %q", i, l)
		}
		lines := 1
		if rec.Error == "" && rec.Diagnostic == nil && (rec.Type == "output" || rec.Type == "log") {
			body := rec.Payload.Data
			if rec.Payload.Text != nil {
				body = []byte(*rec.Payload.Text)
			}
			lines += bytes.Count(bytes.TrimSuffix(body, []byte{'\n'}), []byte{'\n'})
		}
		if at+lines > len(tl) {
			t.Fatalf("%d text lines for %d JSON records (record %d wants %d more)\n%s\n%s", len(tl), len(jl), i, lines, text, js)
		}
		first := tl[at]
		if !utf8.ValidString(first) {
			t.Fatalf("text record %d is not UTF-8: %q", i, first)
		}
		if (rec.Diagnostic != nil) != strings.HasPrefix(first, "! ") {
			t.Fatalf("record %d: text %q and JSON %q disagree on being a diagnostic", i, first, l)
		}
		const prefix = len("  +0.000000 G ") + 15
		for _, c := range tl[at+1 : at+lines] {
			if len(first) < prefix || !strings.HasPrefix(c, first[:prefix]) || !utf8.ValidString(c) {
				t.Fatalf("record %d: continuation line %q does not repeat %q's prefix", i, c, first)
			}
		}
		at += lines
	}
	if at != len(tl) {
		t.Fatalf("%d text lines for %d JSON records (%d accounted for)\n%s\n%s", len(tl), len(jl), at, text, js)
	}
}

// FuzzRender renders one frame of any type, flags and payload in both
// formats: it must not panic, every record must be well formed, and a
// payload error must show up in both formats alike.
func FuzzRender(f *testing.F) {
	guest, host := everyTypeMessages()
	for _, m := range append(guest, host...) {
		p, _ := wire.Marshal(m)
		f.Add(uint16(m.MsgType()), uint8(0), p)
	}
	f.Add(uint16(wire.TypeOutput), uint8(1), []byte{2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xc3, 0x28})
	f.Add(uint16(wire.TypePhase), uint8(0), []byte("{\"phase\":\"\\u2028\"\n}"))
	f.Add(uint16(wire.TypeWorkerMetrics), uint8(0), []byte(`{"cpus":"all"}`))
	f.Add(uint16(0x8000), uint8(0xff), []byte{})
	f.Fuzz(func(t *testing.T, typ uint16, flags uint8, payload []byte) {
		if len(payload) > wire.MaxPayload {
			return
		}
		frame := wire.AppendFrame(nil, wire.Header{Type: wire.Type(typ), Flags: flags}, payload)
		text, tst, terr := render(t, frame, Options{Format: Text, Stats: true, Summary: true})
		js, jst, jerr := render(t, frame, Options{Format: JSON, Stats: true, Summary: true})
		if terr != nil || jerr != nil {
			t.Fatalf("Run: %v / %v", terr, jerr)
		}
		if tst.Frames != 1 || tst.PayloadErrors != jst.PayloadErrors {
			t.Fatalf("text saw %d frames %d payload errors, JSON %d payload errors", tst.Frames, tst.PayloadErrors, jst.PayloadErrors)
		}
		jsLines := strings.SplitN(js, "\n", 2)
		var rec struct {
			Payload    json.RawMessage `json:"payload"`
			PayloadB64 []byte          `json:"payload_b64"`
			Error      string          `json:"error"`
		}
		if err := json.Unmarshal([]byte(jsLines[0]), &rec); err != nil {
			t.Fatalf("frame record %q: %v", jsLines[0], err)
		}
		if (rec.Error != "") != (jst.PayloadErrors == 1) || (rec.Error != "") != strings.Contains(text, "BAD PAYLOAD") {
			t.Fatalf("payload error reported inconsistently: json %q, text %q", jsLines[0], strings.SplitN(text, "\n", 2)[0])
		}
		if rec.PayloadB64 != nil && !bytes.Equal(rec.PayloadB64, payload) {
			t.Fatalf("payload_b64 does not hold the payload")
		}
		if rec.Payload != nil && isJSONType(wire.Type(typ)) {
			var want bytes.Buffer
			json.Compact(&want, payload)
			if !bytes.Equal(rec.Payload, want.Bytes()) {
				t.Fatalf("embedded payload %s, want %s", rec.Payload, want.Bytes())
			}
		}
		// Records only: stats and summary end the output in both formats.
		text2, _, _ := render(t, frame, Options{Format: Text})
		js2, _, _ := render(t, frame, Options{Format: JSON})
		checkRecords(t, text2, js2)
	})
}

// FuzzRun decodes arbitrary bytes in both formats: no panics, well-formed
// records, and every byte accounted for in the stats.
func FuzzRun(f *testing.F) {
	g := goldenStream(f)
	f.Add(g)
	f.Add(g[:len(g)-7])
	bad := bytes.Clone(g)
	bad[200] ^= 0x40
	f.Add(append([]byte("xKTSR\x01"), bad...))
	f.Fuzz(func(t *testing.T, stream []byte) {
		text, st, err := render(t, stream, Options{Format: Text})
		if err != nil {
			t.Fatal(err)
		}
		js, _, err := render(t, stream, Options{Format: JSON})
		if err != nil {
			t.Fatal(err)
		}
		if len(stream) > 0 {
			checkRecords(t, text, js)
		}
		if st.FrameBytes+st.BytesSkipped+st.TruncatedBytes != int64(len(stream)) || st.BytesRead != int64(len(stream)) {
			t.Fatalf("bytes not accounted for: %+v of %d", *st, len(stream))
		}
	})
}
