package decode

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"testing"

	"github.com/ktstr-go/ktstr/internal/streamgen"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

var benchStream = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	streamgen.Write(&b, 32<<20, 1)
	return b.Bytes()
})

// BenchmarkValidate is the decoder alone: header checks and CRC32C of
// every frame, no rendering.
func BenchmarkValidate(b *testing.B) {
	s := benchStream()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		d := wire.NewDecoder(bytes.NewReader(s))
		for {
			if _, err := d.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchRun(b *testing.B, o Options) {
	s := benchStream()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := Run(bytes.NewReader(s), io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunQuiet is ktstr-decode -q --stats: decode, check every
// payload's layout, count.
func BenchmarkRunQuiet(b *testing.B) { benchRun(b, Options{Quiet: true, Stats: true}) }

// BenchmarkRunJSON is ktstr-decode --json.
func BenchmarkRunJSON(b *testing.B) { benchRun(b, Options{Format: JSON}) }

// BenchmarkRunText is ktstr-decode (text).
func BenchmarkRunText(b *testing.B) { benchRun(b, Options{Format: Text}) }

// jsonPayloads is the JSON payloads of the bench stream, concatenated
// with their boundaries, for the validator benchmarks.
var jsonPayloads = sync.OnceValue(func() (ps [][]byte) {
	d := wire.NewDecoder(bytes.NewReader(benchStream()[:4<<20]))
	for {
		f, err := d.Next()
		if err != nil {
			return ps
		}
		if isJSONType(f.Type) {
			ps = append(ps, bytes.Clone(f.Payload))
		}
	}
})

func benchValidator(b *testing.B, valid func([]byte) bool) {
	ps := jsonPayloads()
	n := 0
	for _, p := range ps {
		n += len(p)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		for _, p := range ps {
			if !valid(p) {
				b.Fatal("invalid")
			}
		}
	}
}

// BenchmarkValidJSON is the validator ktstr-decode uses on JSON payloads;
// BenchmarkValidJSONStd is the baseline it replaces, encoding/json.Valid.
func BenchmarkValidJSON(b *testing.B) {
	benchValidator(b, func(p []byte) bool { return validJSON(p) < 0 })
}
func BenchmarkValidJSONStd(b *testing.B) { benchValidator(b, json.Valid) }
