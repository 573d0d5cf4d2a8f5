package decode

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// logFrames encodes Log frames with the given texts and returns the
// stream and each frame's start offset.
func logFrames(t testing.TB, texts ...string) ([]byte, []int) {
	var b bytes.Buffer
	e := wire.NewEncoder(&b, wire.WithClock(stepClock(1000, 1000)))
	var offs []int
	for _, s := range texts {
		offs = append(offs, b.Len())
		if err := e.Encode(wire.Log{Text: s}); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes(), offs
}

// records reduces text output to what the corruption tests compare: a
// frame line becomes its log text, a diagnostic line stays as it is.
func records(out string) []string {
	var r []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(l, "! ") {
			r = append(r, l)
		} else if f := strings.Fields(l); len(f) > 0 {
			r = append(r, f[len(f)-1])
		}
	}
	return r
}

func crcLine(stream []byte, off int, skipped int) string {
	h := stream[off : off+wire.HeaderSize]
	n := int(binary.LittleEndian.Uint32(h[12:]))
	got := wire.FrameCRC(h, stream[off+wire.HeaderSize:off+wire.HeaderSize+n])
	return fmt.Sprintf("! corrupt stream at byte %d: CRC mismatch (header says %08x, computed %08x); skipped %d bytes",
		off, binary.LittleEndian.Uint32(h[28:]), got, skipped)
}

func TestCorruption(t *testing.T) {
	base, offs := logFrames(t, "one", "two", "three", "four")
	size := offs[1] - offs[0] // every frame here has a 3- to 5-byte payload
	_ = size
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(base)) }
	giant := func() []byte {
		var h [wire.HeaderSize]byte
		wire.PutHeader(h[:], &wire.Header{Type: wire.TypeLog}, nil)
		binary.LittleEndian.PutUint32(h[12:], 0x7fffffff)
		return h[:]
	}()
	cases := []struct {
		name   string
		stream []byte
		want   func(stream []byte) []string
		stats  Stats
	}{
		{
			name:   "flipped payload bit",
			stream: edit(func(b []byte) []byte { b[offs[1]+wire.HeaderSize+1] ^= 0x04; return b }),
			want: func(s []byte) []string {
				return []string{"one", crcLine(s, offs[1], offs[2]-offs[1]), "three", "four"}
			},
			stats: Stats{Frames: 3, CorruptRegions: 1, CRCErrors: 1, BytesSkipped: int64(offs[2] - offs[1]), SeqGaps: 1},
		},
		{
			name:   "flipped header bit",
			stream: edit(func(b []byte) []byte { b[offs[2]+9] ^= 0x80; return b }),
			want: func(s []byte) []string {
				return []string{"one", "two", crcLine(s, offs[2], offs[3]-offs[2]), "four"}
			},
			stats: Stats{Frames: 3, CorruptRegions: 1, CRCErrors: 1, BytesSkipped: int64(offs[3] - offs[2]), SeqGaps: 1},
		},
		{
			name:   "flipped magic bit",
			stream: edit(func(b []byte) []byte { b[offs[0]] ^= 0x01; return b }),
			want: func(s []byte) []string {
				return []string{fmt.Sprintf("! corrupt stream at byte 0: bad magic; skipped %d bytes", offs[1]), "two", "three", "four"}
			},
			stats: Stats{Frames: 3, CorruptRegions: 1, BytesSkipped: int64(offs[1]), SeqGaps: 0},
		},
		{
			name: "garbage between frames",
			stream: edit(func(b []byte) []byte {
				return append(append(b[:offs[2]:offs[2]], "KTS\x00garbage KTSR"...), base[offs[2]:]...)
			}),
			want: func(s []byte) []string {
				return []string{"one", "two", fmt.Sprintf("! corrupt stream at byte %d: bad magic; skipped 16 bytes", offs[2]), "three", "four"}
			},
			stats: Stats{Frames: 4, CorruptRegions: 1, BytesSkipped: 16},
		},
		{
			name:   "giant length field",
			stream: append(append(bytes.Clone(base[:offs[1]]), giant...), base[offs[1]:]...),
			want: func(s []byte) []string {
				return []string{"one", fmt.Sprintf("! corrupt stream at byte %d: length 2147483647 exceeds the 16777216-byte cap; skipped 32 bytes", offs[1]), "two", "three", "four"}
			},
			stats: Stats{Frames: 4, CorruptRegions: 1, BytesSkipped: 32},
		},
		{
			name:   "cut last frame",
			stream: base[:offs[3]+34],
			want: func(s []byte) []string {
				return []string{"one", "two", "three", fmt.Sprintf("! truncated frame at byte %d: stream ends after 34 of %d bytes", offs[3], len(base)-offs[3])}
			},
			stats: Stats{Frames: 3, Truncated: 1, TruncatedBytes: 34},
		},
		{
			name:   "cut header of last frame",
			stream: base[:offs[3]+3],
			want: func(s []byte) []string {
				return []string{"one", "two", "three", fmt.Sprintf("! truncated frame at byte %d: stream ends after 3 of 32 bytes", offs[3])}
			},
			stats: Stats{Frames: 3, Truncated: 1, TruncatedBytes: 3},
		},
		{
			// A frame cut mid-stream: its header borrows the next frame's
			// bytes, so its length and CRC fields are nonsense; the decoder
			// skips it and resumes at frame three.
			name:   "cut frame mid-stream",
			stream: append(bytes.Clone(base[:offs[1]+20]), base[offs[2]:]...),
			want: func(s []byte) []string {
				return []string{"one", crcLine(s, offs[1], 20), "three", "four"}
			},
			stats: Stats{Frames: 3, CorruptRegions: 1, CRCErrors: 1, BytesSkipped: 20, SeqGaps: 1},
		},
		{
			name:   "trailing garbage",
			stream: append(bytes.Clone(base), "\x00\x00junk"...),
			want: func(s []byte) []string {
				return []string{"one", "two", "three", "four", fmt.Sprintf("! corrupt stream at byte %d: bad magic; skipped 6 bytes", len(base))}
			},
			stats: Stats{Frames: 4, CorruptRegions: 1, BytesSkipped: 6},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, st, err := render(t, c.stream, Options{Stats: false})
			if err != nil {
				t.Fatalf("without --strict Run must succeed: %v", err)
			}
			got, want := records(out), c.want(c.stream)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if st.Frames != c.stats.Frames || st.CorruptRegions != c.stats.CorruptRegions || st.CRCErrors != c.stats.CRCErrors ||
				st.BytesSkipped != c.stats.BytesSkipped || st.Truncated != c.stats.Truncated || st.TruncatedBytes != c.stats.TruncatedBytes ||
				st.SeqGaps != c.stats.SeqGaps || st.BytesRead != int64(len(c.stream)) {
				t.Fatalf("stats %+v\nwant %+v", *st, c.stats)
			}
			if st.FrameBytes+st.BytesSkipped+st.TruncatedBytes != st.BytesRead {
				t.Fatalf("bytes not accounted: %d in frames + %d skipped + %d truncated != %d read", st.FrameBytes, st.BytesSkipped, st.TruncatedBytes, st.BytesRead)
			}
			// --strict shows the same records, then fails.
			out2, _, err := render(t, c.stream, Options{Strict: true})
			if !errors.Is(err, ErrCorrupt) || out2 != out {
				t.Fatalf("--strict: err=%v, output changed=%v", err, out2 != out)
			}
			// The JSON diagnostics carry the same facts.
			jout, _, _ := render(t, c.stream, Options{Format: JSON})
			for _, l := range strings.Split(strings.TrimSpace(jout), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("bad JSON line %q: %v", l, err)
				}
				if d, ok := rec["diagnostic"]; ok {
					if !strings.Contains(strings.Join(want, "\n"), "! "+rec["error"].(string)) || (d != "corrupt" && d != "truncated") {
						t.Fatalf("JSON diagnostic %s does not match the text one", l)
					}
				}
			}
		})
	}
}

func TestCleanStreamStrictSucceeds(t *testing.T) {
	base, _ := logFrames(t, "one", "two")
	if _, st, err := render(t, base, Options{Strict: true}); err != nil || st.Corrupt() {
		t.Fatalf("clean stream: %v", err)
	}
	// A bad payload is not stream corruption, but --strict fails on it.
	var b bytes.Buffer
	wire.NewEncoder(&b).WriteFrame(wire.TypeGuestExit, []byte{1, 2})
	_, st, err := render(t, b.Bytes(), Options{Strict: true})
	if !errors.Is(err, ErrCorrupt) || st.PayloadErrors != 1 {
		t.Fatalf("bad payload under --strict: err=%v stats=%+v", err, *st)
	}
}

func TestDiagnosticsAlsoGoToDiagWriter(t *testing.T) {
	base, offs := logFrames(t, "one", "two")
	base[offs[1]+wire.HeaderSize] ^= 1
	var b bytes.Buffer
	wire.NewEncoder(&b).WriteFrame(wire.TypeGuestExit, []byte{1})
	stream := append(base, b.Bytes()...)
	var diag bytes.Buffer
	if _, err := Run(bytes.NewReader(stream), io.Discard, Options{Diag: &diag, DiagPrefix: "ktstr-decode: "}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s\nktstr-decode: frame at byte %d: bad guest_exit payload: 1 bytes, want 4\n",
		strings.Replace(crcLine(stream, offs[1], len(base)-offs[1]), "! ", "ktstr-decode: ", 1), len(base))
	if diag.String() != want {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", diag.String(), want)
	}
}

func TestFilter(t *testing.T) {
	for _, c := range []struct {
		spec []string
		in   []wire.Type
		out  []wire.Type
		err  string
	}{
		{spec: []string{"phase"}, in: []wire.Type{wire.TypePhase}, out: []wire.Type{wire.TypeLog, wire.TypeVMExit}},
		{spec: []string{"phase,6", "0x0102"}, in: []wire.Type{wire.TypePhase, wire.TypeOutput, wire.TypeVMExit}, out: []wire.Type{wire.TypeLog}},
		{spec: []string{"user"}, in: []wire.Type{0x8000, 0xffff}, out: []wire.Type{0x7fff, wire.TypePhase}},
		{spec: []string{"user_0x8001"}, in: []wire.Type{0x8001}, out: []wire.Type{0x8002}},
		{spec: nil, in: []wire.Type{0, wire.TypePhase, 0xffff}},
		{spec: []string{"bogus"}, err: `unknown message type "bogus"`},
		{spec: []string{"0x10000"}, err: `unknown message type "0x10000"`},
		{spec: []string{"user_0x0001"}, err: `unknown message type "user_0x0001"`},
	} {
		f, err := ParseFilter(c.spec)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		for _, ty := range c.in {
			if !f.Match(ty) {
				t.Errorf("%q does not match %s", c.spec, ty)
			}
		}
		for _, ty := range c.out {
			if f.Match(ty) {
				t.Errorf("%q matches %s", c.spec, ty)
			}
		}
	}
}

// TestStreamsBeforeEOF writes one frame into a pipe and expects its line
// on the output before anything else is written or the pipe is closed,
// with and without --line-buffered.
func TestStreamsBeforeEOF(t *testing.T) {
	for _, lb := range []bool{false, true} {
		for _, format := range []Format{Text, JSON} {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				_, err := Run(inR, outW, Options{Format: format, LineBuffered: lb})
				outW.CloseWithError(err)
				done <- err
			}()
			enc := wire.NewEncoder(inW)
			lines := bufio.NewReader(outR)
			for _, s := range []string{"first", "second"} {
				go enc.Encode(wire.Log{Text: s})
				got := make(chan string, 1)
				go func() { l, _ := lines.ReadString('\n'); got <- l }()
				select {
				case l := <-got:
					if !strings.Contains(l, s) {
						t.Fatalf("line-buffered=%v: got %q, want the %s frame", lb, l, s)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("line-buffered=%v format=%d: no output for a complete frame while the input stays open", lb, format)
				}
			}
			inW.Close()
			if rest, _ := io.ReadAll(lines); len(rest) != 0 {
				t.Fatalf("unexpected trailing output %q", rest)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

type failReader struct{ data []byte }

func (r *failReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	return 0, errors.New("input/output error")
}

func TestIOErrors(t *testing.T) {
	base, _ := logFrames(t, "one")
	_, err := Run(bytes.NewReader(base), failWriter{}, Options{})
	var we *WriteError
	if !errors.As(err, &we) || err.Error() != "write output: disk full" {
		t.Fatalf("write failure: %v", err)
	}
	var out bytes.Buffer
	_, err = Run(&failReader{base}, &out, Options{})
	var re *ReadError
	if !errors.As(err, &re) || err.Error() != "read input: input/output error" || !strings.Contains(out.String(), "one") {
		t.Fatalf("read failure: %v (output %q)", err, out.String())
	}
}
