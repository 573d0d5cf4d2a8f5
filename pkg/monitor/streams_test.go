package monitor

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.ktstr from their generators")

// A recording is built from frames; generators describe each run.
type recording struct {
	buf  bytes.Buffer
	enc  *wire.Encoder
	host *wire.Encoder // host types carry the host flag, as ktstr-boot writes them
	now  uint64
}

func newRecording() *recording {
	r := &recording{}
	clock := wire.WithClock(func() uint64 { return r.now })
	r.enc = wire.NewEncoder(&r.buf, clock)
	r.host = wire.NewEncoder(&r.buf, clock, wire.WithFlags(wire.FlagHost))
	return r
}

func (r *recording) add(m wire.Message) {
	enc := r.enc
	if m.MsgType().IsHost() {
		enc = r.host
	}
	if err := enc.Encode(m); err != nil {
		panic(err)
	}
}

// sample makes sample i of a 100 ms cadence for 2 CPUs.
func sample(i int, state string, cpus ...wire.CPUSample) wire.MonitorSample {
	for j := range cpus {
		cpus[j].CPU = j
	}
	return wire.MonitorSample{Seq: uint64(i), ElapsedNS: uint64(i) * 1e8, ScxState: state, ScxOps: "qmap", WatchdogTimeout: 5e9, CPUs: cpus}
}

func busy(i, nr int) wire.CPUSample {
	return wire.CPUSample{NrRunning: uint32(nr), ClockNS: uint64(1e9 + i*1e8), CurrPID: 100, CurrComm: "spin", ScxNrRun: uint32(nr), LocalDSQ: 0}
}

func header(r *recording, fifo string) {
	r.add(wire.VMStart{VMM: "recording", VCPUs: 2, MemorySize: 512 << 20, ControlFIFO: fifo})
	r.add(wire.GuestReady{Kernel: "6.12.0", CPUs: 2, MemoryKiB: 500000})
	r.add(wire.Phase{Phase: wire.PhaseSchedulerAttached})
}

var generators = map[string]func(r *recording){
	// 40 samples, both CPUs busy with advancing clocks, a passing check.
	"clean": func(r *recording) {
		header(r, "")
		for i := range 40 {
			r.now = uint64(i) * 1e8
			r.add(sample(i, "enabled", busy(i, 2), busy(i, 1)))
		}
		r.add(wire.CheckResult{Name: "starvation", Pass: true, Threshold: 2, Observed: 0.1, Unit: "s"})
		r.add(wire.GuestExit{Code: 0})
	},
	// CPU 1 stops advancing its clock at sample 25 with tasks queued;
	// CPU 0 sits idle with a frozen clock (exempt) and a third CPU is
	// frozen but preempted on the host (exempt).
	"stall": func(r *recording) {
		header(r, "")
		for i := range 40 {
			r.now = uint64(i) * 1e8
			c0 := wire.CPUSample{NrRunning: 0, ClockNS: 5e8}
			c1 := busy(i, 2)
			if i >= 25 {
				c1 = busy(25, 2)
			}
			c2 := busy(10, 1)
			c2.Preempted = i >= 10
			r.add(sample(i, "enabled", c0, c1, c2))
		}
	},
	// Imbalance 10:1 for 10 samples, local DSQ depth 80 on CPU 1 for 6
	// samples, and one garbage sample (depth 20000) in between, ignored.
	"imbalance": func(r *recording) {
		header(r, "")
		for i := range 50 {
			r.now = uint64(i) * 1e8
			c0, c1 := busy(i, 2), busy(i, 2)
			if i >= 22 && i < 32 {
				c0.NrRunning = 10
				c1.NrRunning = 1
			}
			if i >= 40 && i < 47 {
				c1.LocalDSQ = 80
			}
			if i == 43 {
				c0.LocalDSQ = 20000
			}
			r.add(sample(i, "enabled", c0, c1))
		}
	},
	// The scheduler dies of a stall: memory shows it disabled with
	// error_stall and the guest reports the same exit (one violation);
	// a guest check fails.
	"schedexit": func(r *recording) {
		header(r, "")
		for i := range 30 {
			r.now = uint64(i) * 1e8
			s := sample(i, "enabled", busy(i, 1), busy(i, 1))
			if i >= 25 {
				s.ScxState, s.ScxOps, s.ScxExitKind, s.ScxExit = "disabled", "", 1026, "error_stall"
			}
			r.add(s)
		}
		r.add(wire.SchedExit{Kind: 1026, KindName: "error_stall", Reason: "runnable task stall", Message: "qmap[1] failed to run for 5.1s"})
		r.add(wire.Phase{Phase: wire.PhaseSchedulerDied, Detail: "exit status 1"})
		r.add(wire.CheckResult{Name: "starvation", Pass: false, Threshold: 2, Observed: 5.1, Unit: "s", Cgroup: "cg0", Step: 1})
		r.add(wire.GuestExit{Code: 1})
	},
	// A clean run with garbage in the middle and a frame cut off at the end.
	"corrupt": func(r *recording) {
		header(r, "")
		r.buf.WriteString("line noise from a console mixed in\n")
		for i := range 3 {
			r.add(sample(i, "enabled", busy(i, 1), busy(i, 1)))
		}
		r.add(wire.Log{Text: "last words"})
		r.buf.Truncate(r.buf.Len() - 3)
	},
}

func testdataPath(name string) string { return filepath.Join("testdata", name+".ktstr") }

func TestGenerateTestdata(t *testing.T) {
	for name, gen := range generators {
		r := newRecording()
		gen(r)
		p := testdataPath(name)
		if *update {
			if err := os.WriteFile(p, r.buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test -run TestGenerateTestdata -update)", err)
		}
		if !bytes.Equal(got, r.buf.Bytes()) {
			t.Errorf("%s differs from its generator (run go test -run TestGenerateTestdata -update)", p)
		}
	}
}

type kindCPU struct {
	kind string
	cpu  int
}

func runRecording(t *testing.T, name string, o Options) (*Result, []byte, string) {
	t.Helper()
	in, err := os.ReadFile(testdataPath(name))
	if err != nil {
		t.Fatal(err)
	}
	var out, rep bytes.Buffer
	var logs strings.Builder
	o.In, o.Out, o.Report = bytes.NewReader(in), &out, &rep
	o.Logf = func(f string, a ...any) { logs.WriteString(strings.TrimSpace(f) + "\n") }
	if o.Thresholds == (Thresholds{}) {
		o.Thresholds = DefaultThresholds
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res, out.Bytes(), rep.String()
}

func TestRecordedStreams(t *testing.T) {
	tests := []struct {
		name      string
		want      []kindCPU
		streamErr bool
		report    string
	}{
		{"clean", nil, false, "monitor OK"},
		{"stall", []kindCPU{{KindStall, 1}}, false, "rq_clock stall on cpu1 for 5 consecutive samples"},
		{"imbalance", []kindCPU{{KindImbalance, -1}, {KindDSQDepth, 1}}, false, "imbalance ratio 10.0"},
		{"schedexit", []kindCPU{{KindSchedExit, -1}, {KindCheckFailed, -1}}, false, "error_stall"},
		{"corrupt", nil, true, "corrupt stream region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := os.ReadFile(testdataPath(tc.name))
			res, out, rep := runRecording(t, tc.name, Options{Tee: true})
			if !bytes.Equal(out, in) {
				t.Errorf("--tee output differs from the input (%d vs %d bytes)", len(out), len(in))
			}
			var got []kindCPU
			for _, v := range res.Violations {
				got = append(got, kindCPU{v.Kind, v.CPU})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("violations %v, want %v\n%s", got, tc.want, rep)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("violation %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
			if (res.StreamErrors > 0) != tc.streamErr {
				t.Errorf("stream errors %d", res.StreamErrors)
			}
			if !strings.Contains(rep, tc.report) {
				t.Errorf("report lacks %q:\n%s", tc.report, rep)
			}
		})
	}
}

// With --emit the monitor's violation frames go into the tee'd stream at
// frame boundaries; the input's frames come through in order, unchanged.
func TestEmitInsertsAtBoundaries(t *testing.T) {
	in, _ := os.ReadFile(testdataPath("stall"))
	res, out, _ := runRecording(t, "stall", Options{Tee: true, Emit: true, JSON: true})
	if len(res.Violations) != 1 {
		t.Fatalf("violations %v", res.Violations)
	}
	var inFrames, outFrames [][]byte
	for _, pair := range []struct {
		b   []byte
		dst *[][]byte
	}{{in, &inFrames}, {out, &outFrames}} {
		d := wire.NewDecoder(bytes.NewReader(pair.b))
		for {
			f, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Type == wire.TypeViolation {
				if f.Flags&wire.FlagHost == 0 {
					t.Error("violation frame without the host flag")
				}
				continue
			}
			*pair.dst = append(*pair.dst, append([]byte(nil), f.Payload...))
		}
	}
	if len(outFrames) != len(inFrames) {
		t.Fatalf("%d input frames came out as %d", len(inFrames), len(outFrames))
	}
	for i := range inFrames {
		if !bytes.Equal(inFrames[i], outFrames[i]) {
			t.Fatalf("frame %d changed", i)
		}
	}
	if len(out) <= len(in) {
		t.Error("no violation frame was added")
	}
}

func TestThresholdsFromConfig(t *testing.T) {
	// Raising the sustain count past the stall's length clears the run.
	th, err := ParseThresholds(strings.NewReader(`{"sustain_samples": 20}`), DefaultThresholds)
	if err != nil {
		t.Fatal(err)
	}
	res, _, _ := runRecording(t, "stall", Options{Thresholds: th})
	if len(res.Violations) != 0 {
		t.Errorf("violations with sustain 20: %v", res.Violations)
	}
	// Turning the imbalance check off leaves the DSQ violation.
	th, _ = ParseThresholds(strings.NewReader(`{"max_imbalance_ratio": 0}`), DefaultThresholds)
	res, _, _ = runRecording(t, "imbalance", Options{Thresholds: th})
	if len(res.Violations) != 1 || res.Violations[0].Kind != KindDSQDepth {
		t.Errorf("violations with imbalance off: %v", res.Violations)
	}
	for _, bad := range []string{`{"sustain_samples": 0}`, `{"nope": 1}`, `{"max_imbalance_ratio": 0.5}`, `[]`, `{} {}`, `{"warmup_samples": -1}`} {
		if _, err := ParseThresholds(strings.NewReader(bad), DefaultThresholds); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}

func FuzzParseThresholds(f *testing.F) {
	f.Add(`{"sustain_samples": 3, "max_local_dsq_depth": 10}`)
	f.Add(`{"max_imbalance_ratio": 1e309}`)
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThresholds(strings.NewReader(s), DefaultThresholds)
		if err == nil && th.Validate() != nil {
			t.Fatalf("accepted invalid %+v", th)
		}
	})
}

// FuzzRunStream feeds arbitrary bytes as a stream: Run must not panic and
// --tee must copy the input exactly.
func FuzzRunStream(f *testing.F) {
	for name := range generators {
		b, err := os.ReadFile(testdataPath(name))
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		_, err := Run(context.Background(), Options{In: bytes.NewReader(in), Out: &out, Report: io.Discard, Tee: true, Thresholds: DefaultThresholds})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("tee changed the stream")
		}
	})
}
