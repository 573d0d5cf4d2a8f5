package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func sampleMessages() []Message {
	code := 3
	return []Message{
		GuestReady{Kernel: "6.12.0", CPUs: 2, MemoryKiB: 1 << 20, InitVersion: "test"},
		Phase{Phase: PhaseSchedulerAttached, Detail: "simple"},
		Stimulus{Step: 1, Name: "grow", ElapsedMS: 500, HoldMS: 1000, Ops: []StimulusOp{{Op: "add_cgroup", Cgroup: "cg1"}}, Cgroups: 2, Workers: 4},
		WorkerMetrics{Step: 0, Cgroup: "cg0", Worker: 1, PID: 42, Work: "spin", Iterations: 10, CPUs: []int{0, 1}, MaxGapNS: 5},
		CgroupMetrics{Cgroup: "cg0", Workers: 2, Cpuset: []int{0}, SpreadPct: 1.5},
		Output{Stream: StreamStderr, Program: ProgramScheduler, Data: []byte("hello\n")},
		SchedExit{Kind: 1024, KindName: "error", Reason: "runnable task stall", ExitCode: &code},
		CheckResult{Name: "starvation", Pass: true, Threshold: 2000, Observed: 12, Unit: "ms"},
		GuestExit{Code: -1},
		Log{Text: "mounted /proc"},
		KernelSymbols{Symbols: map[string]uint64{"_text": 0xffffffff81000000}},
		BPFProgStats{Scheduler: "scx_simple", SelectedBy: "fd", Programs: []BPFProg{{ID: 7, Name: "simple_enqueue", Type: "StructOps",
			VerifiedInsns: 42, LoadTimeNS: 3e9, LoadOffsetNS: 2e8, JitedSize: 300, XlatedSize: 400, MapIDs: []uint32{3, 4}}}},
		VMStart{VMM: "ktstr-boot", PID: 7, VCPUs: 2, MemorySize: 1 << 30, Regions: []MemRegion{{GPA: 0, Size: 1 << 30}}},
		MonitorSample{Seq: 1, CPUs: []CPUSample{{CPU: 0, NrRunning: 2, ClockNS: 99, Preempted: true}}, ScxExitKind: 1026, ScxExit: "error_stall"},
		VMExit{Reason: "guest_exit", ExitCode: 0, WallNS: 1e9, VCPUs: 2, FirstGuestFrameNS: 5e8},
		Violation{Kind: "cpu_stall", CPU: 1, Message: "rq clock stuck"},
		probeEventSample(),
		ProbeMeta{Stage: ProbeStageDone, Attached: []ProbeAttach{{Func: "balance_scx", Kind: "kprobe"}},
			Failed: []ProbeAttach{{Func: "nosuch", Kind: "kprobe", Error: "not found"}}, Triggered: true, Events: 9, Sent: 9},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	msgs := sampleMessages()
	for _, m := range msgs {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	if len(msgs) != len(Types()) {
		t.Fatalf("sample covers %d types, format defines %d", len(msgs), len(Types()))
	}
	dec := NewDecoder(&buf)
	for i, want := range msgs {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type != want.MsgType() || f.Seq != uint32(i) {
			t.Fatalf("frame %d: type %s seq %d", i, f.Type, f.Seq)
		}
		got, err := Unmarshal(f.Type, f.Payload)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %#v want %#v", i, got, want)
		}
	}
	if _, err := dec.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestCorruptionResync(t *testing.T) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	enc.Encode(Log{Text: "one"})
	good1 := buf.Len()
	enc.Encode(Log{Text: "two"})
	b := buf.Bytes()
	b[good1+HeaderSize] ^= 0x01 // flip a payload bit of frame two
	stream := append([]byte("junk"), b...)
	enc2 := NewEncoder(bytes.NewBuffer(nil))
	_ = enc2
	var tail bytes.Buffer
	NewEncoder(&tail, WithSeq(2)).Encode(Log{Text: "three"})
	stream = append(stream, tail.Bytes()...)
	stream = append(stream, tail.Bytes()[:10]...) // cut last frame

	dec := NewDecoder(bytes.NewReader(stream))
	var ce *CorruptError
	if _, err := dec.Next(); !errors.As(err, &ce) || ce.Offset != 0 || ce.Skipped != 4 {
		t.Fatalf("want corruption at 0 of 4 bytes, got %v", err)
	}
	if f, err := dec.Next(); err != nil || string(f.Payload) != "one" {
		t.Fatalf("frame one: %v", err)
	}
	if _, err := dec.Next(); !errors.As(err, &ce) || ce.Offset != int64(4+good1) {
		t.Fatalf("want CRC corruption, got %v", err)
	}
	if f, err := dec.Next(); err != nil || string(f.Payload) != "three" {
		t.Fatalf("frame three: %v", err)
	}
	var te *TruncatedError
	if _, err := dec.Next(); !errors.As(err, &te) || te.Have != 10 {
		t.Fatalf("want truncation, got %v", err)
	}
	if _, err := dec.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestGiantLengthIsNotAllocated(t *testing.T) {
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Type: TypeLog}, nil)
	h[12], h[13], h[14], h[15] = 0xff, 0xff, 0xff, 0x7f
	dec := NewDecoder(bytes.NewReader(h[:]))
	var ce *CorruptError
	if _, err := dec.Next(); !errors.As(err, &ce) {
		t.Fatalf("got %v", err)
	}
	if cap(dec.buf) > defaultBuf {
		t.Fatalf("decoder grew its buffer to %d", cap(dec.buf))
	}
}

func TestParseType(t *testing.T) {
	for _, ty := range append(Types(), 0x0050, 0x8001, 0xffff) {
		if got, err := ParseType(ty.String()); err != nil || got != ty {
			t.Errorf("ParseType(%q) = %v, %v", ty.String(), got, err)
		}
	}
	for s, want := range map[string]Type{"6": TypeOutput, "0x0102": TypeVMExit, "32769": 0x8001} {
		if got, err := ParseType(s); err != nil || got != want {
			t.Errorf("ParseType(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0x", "0x1zz", "12abc", "-1", "65536", "0x10000", "user_0x0001", "bogus"} {
		if _, err := ParseType(s); err == nil {
			t.Errorf("ParseType(%q) accepted", s)
		}
	}
}
