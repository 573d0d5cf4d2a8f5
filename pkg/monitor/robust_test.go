package monitor

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// lockedBuffer is an io.Writer safe to read while Run writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// TestTeeForwardsCorruptRegionPromptly: a long corrupt region streams
// through --tee while it lasts (with and without --emit), instead of being
// held until a frame ends it, and what the monitor holds stays bounded.
func TestTeeForwardsCorruptRegionPromptly(t *testing.T) {
	for _, emit := range []bool{false, true} {
		pr, pw := io.Pipe()
		var out lockedBuffer
		done := make(chan *Result, 1)
		go func() {
			res, err := Run(context.Background(), Options{In: pr, Out: &out, Report: io.Discard, Tee: true, Emit: emit, Thresholds: DefaultThresholds})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		chunk := bytes.Repeat([]byte("not a frame, only text; "), 4096) // ~96 KiB, no 'K'
		total := 0
		for range 64 { // ~6 MiB of corruption
			pw.Write(chunk)
			total += len(chunk)
		}
		// Everything but what the decoder may still hold (one read) is out
		// before the region ends.
		deadline := time.Now().Add(10 * time.Second)
		for out.Len() < total-(512<<10) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := out.Len(); got < total-(512<<10) {
			t.Errorf("emit=%v: %d of %d corrupt bytes passed on while the region lasts", emit, got, total)
		}
		var good bytes.Buffer
		wire.NewEncoder(&good).Encode(wire.Log{Text: "end"})
		pw.Write(good.Bytes())
		pw.Close()
		res := <-done
		if out.Len() != total+good.Len() || res.StreamErrors != 1 || res.Frames != 1 {
			t.Errorf("emit=%v: %d bytes out of %d, %d stream errors, %d frames", emit, out.Len(), total+good.Len(), res.StreamErrors, res.Frames)
		}
	}
}

// TestTeeFlushesOnInterrupt: cancelled mid-frame, --tee still passes on
// every byte it read.
func TestTeeFlushesOnInterrupt(t *testing.T) {
	var good bytes.Buffer
	wire.NewEncoder(&good).Encode(wire.Log{Text: strings.Repeat("x", 1000)})
	part := good.Bytes()[:500]
	pr, pw := io.Pipe()
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Result, 1)
	go func() {
		res, _ := Run(ctx, Options{In: pr, Out: &out, Report: io.Discard, Tee: true, Emit: true, Thresholds: DefaultThresholds})
		done <- res
	}()
	pw.Write(part)
	time.Sleep(50 * time.Millisecond)
	cancel()
	res := <-done
	if !res.Interrupted {
		t.Error("Result.Interrupted not set")
	}
	if out.Len() != len(part) {
		t.Errorf("%d of %d bytes read passed on after the interrupt", out.Len(), len(part))
	}
	pw.Close()
}

// forgeryStream: the VMM's vm_start, then a forged one (no host flag) and
// a second host one, each naming another control FIFO and vCPU count.
func TestOnlyFirstHostVMStartCounts(t *testing.T) {
	var b bytes.Buffer
	host := wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost))
	guest := wire.NewEncoder(&b)
	host.Encode(wire.VMStart{VMM: "ktstr-boot", PID: 1, VCPUs: 2, ControlFIFO: "/first"})
	guest.Encode(wire.VMStart{VMM: "evil", PID: 2, VCPUs: 64, ControlFIFO: "/evil"})
	host.Encode(wire.VMStart{VMM: "again", PID: 3, VCPUs: 8, ControlFIFO: "/second"})
	guest.Encode(wire.MonitorSample{Seq: 1, CPUs: []wire.CPUSample{{CPU: 0}}})
	var logs strings.Builder
	r := &runner{o: Options{Logf: func(f string, a ...any) { logs.WriteString(f + "\n") }}, ev: NewEvaluator(DefaultThresholds)}
	d := wire.NewDecoder(&b)
	for {
		f, err := d.Next()
		if err != nil {
			break
		}
		r.frame(f)
	}
	if r.vm == nil || r.vm.ControlFIFO != "/first" || r.vm.VCPUs != 2 {
		t.Fatalf("VM start in force: %+v, want the first host one", r.vm)
	}
	if s := r.ev.Summary(); s.Samples != 0 {
		t.Errorf("a monitor_sample without the host flag was evaluated")
	}
	for _, want := range []string{"without the host flag", "second vm_start"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestRecordingIsJudgedFromItsSamples: re-judging a recording whose
// vm_start names a memory file that exists now must use the recorded
// samples, not sample the file (which would drop them and flip the
// verdict). Only a live stream from a running VMM is sampled.
func TestRecordingIsJudgedFromItsSamples(t *testing.T) {
	in, err := os.ReadFile(testdataPath("stall"))
	if err != nil {
		t.Fatal(err)
	}
	ram := filepath.Join(t.TempDir(), "ram")
	os.WriteFile(ram, make([]byte, 1<<20), 0o600)
	// Replace the recording's vm_start with one naming ram and this
	// (running) process.
	d := wire.NewDecoder(bytes.NewReader(in))
	f, err := d.Next()
	if err != nil || f.Type != wire.TypeVMStart {
		t.Fatalf("first frame %v %v", f, err)
	}
	rest := in[f.Offset+int64(len(f.Raw)):]
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		live bool
		pid  int
		log  string
	}{{false, os.Getpid(), "a recording"}, {true, dead.Process.Pid, "not running"}} {
		live := tc.live
		var rec bytes.Buffer
		wire.NewEncoder(&rec, wire.WithFlags(wire.FlagHost)).Encode(wire.VMStart{VMM: "ktstr-boot", PID: tc.pid, VCPUs: 3, MemoryPath: ram, MemorySize: 1 << 20})
		rec.Write(rest)
		var logs strings.Builder
		res, err := Run(context.Background(), Options{In: bytes.NewReader(rec.Bytes()), Out: io.Discard, Report: io.Discard,
			Live: live, Kernel: nil, Thresholds: DefaultThresholds,
			Logf: func(f string, a ...any) { logs.WriteString(f + "\n") }})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sampling || len(res.Violations) != 1 || res.Violations[0].Kind != KindStall {
			t.Errorf("live=%v: sampling %v, violations %v; want the recorded stall\n%s", live, res.Sampling, res.Violations, logs.String())
		}
		if !strings.Contains(logs.String(), tc.log) {
			t.Errorf("live=%v: log does not say the recording is judged from its samples:\n%s", live, logs.String())
		}
	}
	if processAlive(0) || processAlive(-1) || !processAlive(os.Getpid()) {
		t.Error("processAlive is wrong")
	}
}

// TestBadPayloadAgreesWithDecode: a JSON field of the wrong type is a bad
// payload for the monitor exactly as for ktstr-decode (wire.CheckPayload).
func TestBadPayloadAgreesWithDecode(t *testing.T) {
	for _, tc := range []struct {
		p   string
		bad bool
	}{{`{"phase":"scenario_start"}`, false}, {`{"phase":7}`, true}, {`{"phase":"x","extra":[[]]}`, false}} {
		s := wire.AppendFrame(nil, wire.Header{Type: wire.TypePhase}, []byte(tc.p))
		res, err := Run(context.Background(), Options{In: bytes.NewReader(s), Out: io.Discard, Report: io.Discard, Thresholds: DefaultThresholds})
		if err != nil {
			t.Fatal(err)
		}
		if (res.StreamErrors > 0) != tc.bad || (wire.CheckPayload(wire.TypePhase, []byte(tc.p)) != nil) != tc.bad {
			t.Errorf("%s: monitor stream errors %d, CheckPayload %v; want bad=%v", tc.p, res.StreamErrors, wire.CheckPayload(wire.TypePhase, []byte(tc.p)), tc.bad)
		}
	}
}
