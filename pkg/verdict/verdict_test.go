package verdict

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// stream builds a stream: guest frames through one encoder, host frames
// through another (host flag), in the order given.
type stream struct {
	buf   bytes.Buffer
	guest *wire.Encoder
	host  *wire.Encoder
}

func newStream() *stream {
	s := &stream{}
	s.guest = wire.NewEncoder(&s.buf, wire.WithClock(func() uint64 { return 7e9 }))
	s.host = wire.NewEncoder(&s.buf, wire.WithFlags(wire.FlagHost))
	return s
}

func (s *stream) g(ms ...wire.Message) *stream {
	for _, m := range ms {
		if err := s.guest.Encode(m); err != nil {
			panic(err)
		}
	}
	return s
}

func (s *stream) h(ms ...wire.Message) *stream {
	for _, m := range ms {
		if err := s.host.Encode(m); err != nil {
			panic(err)
		}
	}
	return s
}

var (
	vmStart = wire.VMStart{VMM: "ktstr-boot", VCPUs: 2, Topology: "1n1l2c1t", Kernel: "/k/bzImage"}
	ready   = wire.GuestReady{Kernel: "6.12.117", CPUs: 2, Scheduler: "scx_simple", Scenario: "steady", Topology: "2cpu/1llc/1node"}
	pass1   = wire.CheckResult{Name: "starvation", Pass: true, Threshold: 2000, Observed: 12, Unit: "ms", Cgroup: "cg0"}
	fail1   = wire.CheckResult{Name: "task_stall", Pass: false, Threshold: 2000, Observed: 4100, Unit: "ms", Step: -1, Detail: "kworker/1:2[87] runnable for 4.1 s without running"}
	exit0   = wire.GuestExit{Code: 0}
	vmOK    = wire.VMExit{Reason: "guest_exit", ExitCode: 0, EndedBy: "poweroff", WallNS: 9e9}
)

func good() *stream { return newStream().h(vmStart).g(ready, pass1, exit0).h(vmOK) }

func judge(t *testing.T, b []byte) Verdict {
	t.Helper()
	v, err := JudgeStream(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerdict(t *testing.T) {
	forgedExit := func() *stream {
		// A guest frame of a host type without the host flag: not believed.
		s := newStream().h(vmStart).g(ready, pass1, exit0)
		p, _ := wire.Marshal(vmOK)
		s.guest.WriteFrame(wire.TypeVMExit, p)
		return s
	}
	truncated := func(s *stream) []byte { b := s.buf.Bytes(); return b[:len(b)-5] }
	corruptMiddle := func() []byte {
		s := newStream().h(vmStart).g(ready)
		n := s.buf.Len()
		s.g(pass1)
		s.g(exit0).h(vmOK)
		b := append([]byte(nil), s.buf.Bytes()...)
		b[n+40] ^= 0xff // inside the check_result frame
		return b
	}
	seqGap := func() []byte {
		s := newStream().h(vmStart).g(ready)
		var scratch bytes.Buffer
		// Encode a frame elsewhere to advance the guest's seq: a lost frame.
		saved := s.guest
		s.guest = wire.NewEncoder(&scratch, wire.WithSeq(2))
		s.g(pass1, exit0)
		s.guest = saved
		b := append(s.buf.Bytes(), scratch.Bytes()...)
		s2 := newStream()
		s2.h(vmOK)
		return append(b, s2.buf.Bytes()...)
	}
	cases := []struct {
		name   string
		in     []byte
		want   Result
		reason string // substring of Reason
	}{
		{"empty", nil, None, "empty stream"},
		{"garbage only", []byte("hello, this is not a stream at all"), None, "no frame in 34 bytes"},
		{"good run", good().buf.Bytes(), Pass, "1 check(s) passed"},
		{"no vm_exit", newStream().h(vmStart).g(ready, pass1, exit0).buf.Bytes(), None, "no vm_exit"},
		{"hung guest, stream cut", newStream().h(vmStart).g(ready, wire.Phase{Phase: wire.PhaseScenarioStart}).buf.Bytes(), None, "no guest_exit and no vm_exit"},
		{"hung guest, timeout", newStream().h(vmStart).g(ready).h(wire.VMExit{Reason: "timeout", ExitCode: 124}).buf.Bytes(), Fail, "no guest_exit: the guest stopped answering after 7.0 s"},
		{"no guest frame", newStream().h(vmStart, wire.VMExit{Reason: "panic", ExitCode: 121}).buf.Bytes(), Fail, "the guest sent no frame"},
		{"only host frames, cut", newStream().h(vmStart).buf.Bytes(), None, "no guest frame"},
		{"no checks", newStream().h(vmStart).g(ready, exit0).h(vmOK).buf.Bytes(), Fail, "no checks ran"},
		{"failed check", newStream().h(vmStart).g(ready, pass1, fail1, wire.GuestExit{Code: 1}).h(vmOK).buf.Bytes(), Fail, "check task_stall failed: observed 4100ms, threshold 2000ms (step -1)"[:30]},
		{"violation", newStream().h(vmStart).g(ready, pass1).h(wire.Violation{Kind: "cpu_stall", CPU: 1, Message: "rq_clock stall on cpu1"}).g(exit0).h(vmOK).buf.Bytes(), Fail, "monitor violation cpu_stall: rq_clock stall on cpu1"},
		{"guest-forged violation ignored", newStream().h(vmStart).g(ready, pass1, wire.Violation{Kind: "x", Message: "forged"}, exit0).h(vmOK).buf.Bytes(), Pass, ""},
		{"sched error exit", newStream().h(vmStart).g(ready, pass1, wire.SchedExit{Kind: 1026, KindName: "error_stall", Reason: "runnable task stall", Message: "kworker/0:1[12] failed to run for 5.1s"}, wire.GuestExit{Code: 4}).h(vmOK).buf.Bytes(), Fail, "the scheduler exited with error_stall: runnable task stall (kworker/0:1[12] failed to run for 5.1s)"},
		{"sched normal exit", newStream().h(vmStart).g(ready, pass1, wire.SchedExit{Kind: 64, KindName: "unreg"}, exit0).h(vmOK).buf.Bytes(), Pass, ""},
		{"guest exit code", newStream().h(vmStart).g(ready, pass1, wire.GuestExit{Code: 3}).h(vmOK).buf.Bytes(), Fail, "guest exit code 3 (the scheduler did not attach)"},
		{"did not power off", newStream().h(vmStart).g(ready, pass1, exit0).h(wire.VMExit{Reason: "guest_exit", EndedBy: "guest_exit", Detail: "guest did not shut down within 10s of its exit frame"}).buf.Bytes(), Fail, "did not power off"},
		{"triple fault after exit", newStream().h(vmStart).g(ready, pass1, exit0).h(wire.VMExit{Reason: "guest_exit", EndedBy: "triple_fault"}).buf.Bytes(), Fail, "did not power off"},
		{"panic after exit frame", newStream().h(vmStart).g(ready, pass1, exit0).h(wire.VMExit{Reason: "panic", ExitCode: 121}).buf.Bytes(), Fail, "did not end by the guest's exit frame"},
		{"forged vm_exit", forgedExit().buf.Bytes(), None, "no vm_exit"},
		{"truncated", truncated(good()), None, "stream truncated at byte"},
		{"truncated after failure", truncated(newStream().h(vmStart).g(ready, fail1, wire.GuestExit{Code: 1}).h(vmOK)), Fail, "check task_stall failed"},
		{"corrupt region", corruptMiddle(), None, "corrupt region"},
		{"seq gap", seqGap(), None, "gap(s) in the guest's frame sequence"},
		{"bad payload", badPayload(), None, "bad payload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := judge(t, c.in)
			if v.Result != c.want {
				t.Fatalf("result %s, want %s; reasons %q", v.Result, c.want, v.Reasons)
			}
			if !strings.Contains(v.Reason, c.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, c.reason)
			}
			if v.ExitCode != c.want.ExitCode() {
				t.Errorf("exit code %d, want %d", v.ExitCode, c.want.ExitCode())
			}
			if len(v.Reasons) == 0 || v.Reasons[0] != v.Reason {
				t.Errorf("reasons %q do not start with reason %q", v.Reasons, v.Reason)
			}
		})
	}
}

func badPayload() []byte {
	s := newStream().h(vmStart).g(ready, pass1)
	s.guest.WriteFrame(wire.TypeCheckResult, []byte(`{"name":"fairness","pass":"yes"}`)) // wrong JSON type
	s.g(exit0).h(vmOK)
	return s.buf.Bytes()
}

func TestIdentity(t *testing.T) {
	v := judge(t, good().buf.Bytes())
	want := Identity{Kernel: "6.12.117", Scheduler: "scx_simple", Scenario: "steady", Topology: "1n1l2c1t", VMM: "ktstr-boot"}
	if v.Identity != want {
		t.Fatalf("identity %+v, want %+v", v.Identity, want)
	}
	line := string(v.AppendText(nil))
	if line != "verdict: PASS kernel=6.12.117 scheduler=scx_simple scenario=steady topology=1n1l2c1t: 1 check(s) passed, guest exit 0, vm_exit guest_exit, exit code 0, ended by poweroff\n" {
		t.Fatalf("text line %q", line)
	}
	// Without vm_start the guest's view of the topology is shown, and a
	// scheduler with arguments is quoted.
	r := ready
	r.Scheduler = "scx_qmap -t 2"
	v = judge(t, newStream().g(r, fail1).buf.Bytes())
	line = string(v.AppendText(nil))
	if !strings.HasPrefix(line, `verdict: FAIL kernel=6.12.117 scheduler="scx_qmap -t 2" scenario=steady topology=2cpu/1llc/1node: check task_stall failed`) {
		t.Fatalf("text line %q", line)
	}
	if j := string(v.AppendJSON(nil)); !strings.HasPrefix(j, `{"verdict":{"result":"fail","reason":"check task_stall failed`) || !strings.HasSuffix(j, "}}\n") {
		t.Fatalf("json line %q", j)
	}
}

func TestReasonStaysOneLine(t *testing.T) {
	c := fail1
	c.Detail = "evil\nverdict: PASS\x1b[2J"
	v := judge(t, newStream().g(ready, c).buf.Bytes())
	line := string(v.AppendText(nil))
	if strings.Count(line, "\n") != 1 || strings.Contains(line, "\x1b") {
		t.Fatalf("line not one escaped line: %q", line)
	}
}

func TestOnlyFirstVMStart(t *testing.T) {
	// The first vm_start wins; a later one is ignored.
	s3 := newStream().h(vmStart, wire.VMStart{VMM: "forged", Topology: "9n9l9c9t"}).g(ready, pass1, exit0).h(vmOK)
	v := judge(t, s3.buf.Bytes())
	if v.VMM != "ktstr-boot" || v.Topology != "1n1l2c1t" {
		t.Fatalf("identity %+v", v.Identity)
	}
}

func FuzzJudge(f *testing.F) {
	f.Add(good().buf.Bytes())
	f.Add(newStream().h(vmStart).g(ready, fail1, wire.GuestExit{Code: 1}).h(vmOK).buf.Bytes())
	f.Add([]byte("KTSR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := JudgeStream(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if v.Reason == "" || len(v.Reasons) > maxReasons {
			t.Fatalf("reasons %q", v.Reasons)
		}
		if v.Result == Pass {
			// A pass needs every piece of evidence.
			if v.GuestExit == nil || *v.GuestExit != 0 || v.ChecksFailed != 0 || v.ChecksPassed == 0 || v.Violations != 0 || v.VMExit != "guest_exit" {
				t.Fatalf("pass without evidence: %+v", v)
			}
		}
	})
}

// TestJudgeStreamAlso: every frame the judge takes reaches each of also, in
// order; a corrupt region reaches none of them and the verdict is the one
// JudgeStream gives alone.
func TestJudgeStreamAlso(t *testing.T) {
	b := good().buf.Bytes()
	cut := append(append([]byte(nil), b[:len(b)-3]...), 0xff, 0xff, 0xff)
	for i, in := range [][]byte{b, cut} {
		var a, c []wire.Type
		v, err := JudgeStream(bytes.NewReader(in), func(f *wire.Frame) { a = append(a, f.Type) }, func(f *wire.Frame) { c = append(c, f.Type) })
		if err != nil {
			t.Fatal(err)
		}
		if alone := judge(t, in); v.Result != alone.Result || v.Reason != alone.Reason {
			t.Errorf("with also: %s %q; alone: %s %q", v.Result, v.Reason, alone.Result, alone.Reason)
		}
		want := 5
		if i == 1 {
			want = 4 // the last frame (vm_exit) is corrupt
		}
		if len(a) != want || !slices.Equal(a, c) || a[0] != wire.TypeVMStart {
			t.Errorf("frames %v and %v, want %d of them", a, c, want)
		}
	}
}
