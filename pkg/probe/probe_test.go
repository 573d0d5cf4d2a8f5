package probe

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

func encode(t testing.TB, ev rawEvent) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, ev); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeAndConvert(t *testing.T) {
	var ev rawEvent
	ev.Ts, ev.CPU, ev.Pid, ev.Func = 99, 1, 42, 1
	copy(ev.Comm[:], "worker\x00junk")
	ev.Fields = fTask | fDSQ | fEnq | fRq | fStack | fTaskDSQ
	ev.TaskPid, ev.Cpumask, ev.DsqID, ev.DsqNr, ev.EnqFlags, ev.RqCPU, ev.RqNrRunning = 7, 3, 0x8000000000000002, 2, 1, 1, 4
	ev.TaskDsqID = 5
	ev.Nstack, ev.Stack[0], ev.Stack[1] = 99, 0x1010, 0x2000 // Nstack beyond the array is clipped
	syms, err := ParseKallsyms(strings.NewReader("0000000000001000 T alpha\n0000000000002000 t beta [bpf]\nzzzz T bad\n0000000000003000 D data\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := encode(t, ev)
	if _, err := decodeEvent(b[:len(b)-1]); err == nil {
		t.Fatal("a short record decoded")
	}
	got, err := decodeEvent(append(b, 0xff)) // trailing ring-buffer padding is ignored
	if err != nil {
		t.Fatal(err)
	}
	p := toWire(&got, []string{"a", "dispatch_enqueue"}, syms)
	if p.Func != "dispatch_enqueue" || p.Comm != "worker" || *p.TaskPID != 7 || *p.CPUMask != 3 || *p.DSQ != 0x8000000000000002 ||
		*p.DSQNr != 2 || *p.EnqFlags != 1 || *p.RqCPU != 1 || *p.RqNr != 4 || *p.TaskDSQ != 5 || p.Trigger || p.Args != nil {
		t.Errorf("converted %+v", p)
	}
	if want := []string{"alpha+0x10", "beta+0x0"}; !reflect.DeepEqual(p.Stack, want) {
		t.Errorf("stack %q, want %q", p.Stack, want)
	}
	// A BPF program's size bounds it: past its end is no man's land.
	syms = syms.with([]sym{{a: 0x1800, n: "bpf:prog", size: 0x10}})
	p = toWire(&got, []string{"a", "b"}, syms)
	if want := []string{"alpha+0x10", "beta+0x0"}; !reflect.DeepEqual(p.Stack, want) {
		t.Errorf("stack %q, want %q", p.Stack, want)
	}
	if got := syms.Lookup(0x1805); got != "bpf:prog+0x5" {
		t.Errorf("Lookup(0x1805) = %q", got)
	}
	if got := syms.Lookup(0x1900); got != "0x1900" {
		t.Errorf("Lookup past a sized symbol = %q", got)
	}
	if want := []string{"alpha+0x10", "beta+0x0"}; !reflect.DeepEqual(p.Stack, want) {
		t.Errorf("stack %q, want %q", p.Stack, want)
	}
	ev = rawEvent{Func: 9, Fields: fExit | fText, Args: [4]uint64{1026, 0}}
	copy(ev.Text[:], "%s[%d] failed")
	p = toWire(&ev, []string{"x"}, nil)
	if p.Func != "probe#9" || !p.Trigger || *p.ExitKind != 1026 || p.Text != "%s[%d] failed" || p.TaskPID != nil {
		t.Errorf("trigger converted %+v", p)
	}
}

func TestList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"1", nil, true},
		{"balance_one,do_pick_task_scx,balance_one", []string{"balance_one", "do_pick_task_scx"}, true},
		{"1,foo.cold", []string{"foo.cold"}, true},
		{"", nil, false},
		{"a;b", nil, false},
		{"9lives", nil, false},
		{"a,,b", nil, false},
		{manyFuncs(MaxExtra + 1), nil, false},
	} {
		got, err := ParseList(c.in)
		if (err == nil) != c.ok || c.ok && !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseList(%q) = %q, %v", c.in, got, err)
		}
	}
	if got := FormatList(nil); got != "ktstr.probe=1" {
		t.Errorf("FormatList(nil) = %q", got)
	}
	if got := FormatList([]string{"a", "b c", "a", "0x12", "bpf_prog_1_x"}); got != "ktstr.probe=a,bpf_prog_1_x" {
		t.Errorf("FormatList = %q", got)
	}
	long := strings.Split(manyFuncs(MaxExtra), ",")
	for i := range long {
		long[i] = strings.Repeat("y", 100) + long[i]
	}
	if got := FormatList(long); len(got) > len(CmdlineKey)+1+MaxValue || len(got) < MaxValue/2 {
		t.Errorf("FormatList of long names: %d bytes", len(got))
	}
}

// FuzzDecodeEvent: any record bytes decode or fail, never panic, and what
// decodes converts.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(encode(f, rawEvent{Fields: 0x1ff, Nstack: 1 << 31}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			return
		}
		p := toWire(&ev, []string{"f"}, nil)
		if len(p.Stack) > stackDepth {
			t.Fatalf("stack of %d", len(p.Stack))
		}
	})
}

// FuzzParseKallsyms: any listing parses or fails; lookups never panic.
func FuzzParseKallsyms(f *testing.F) {
	f.Add("ffffffff81000000 T _text\nffffffff81000010 t x [bpf]\n", uint64(0xffffffff81000011))
	f.Add("0 T a\n", uint64(0))
	f.Fuzz(func(t *testing.T, s string, addr uint64) {
		st, err := ParseKallsyms(strings.NewReader(s))
		if err != nil {
			return
		}
		if st.Lookup(addr) == "" {
			t.Fatal("empty name")
		}
	})
}

// FuzzParseList: what ParseList accepts, FormatList writes back the same.
func FuzzParseList(f *testing.F) {
	f.Add("1")
	f.Add("a,b,a")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseList(s)
		if err != nil {
			return
		}
		back, err := ParseList(strings.TrimPrefix(FormatList(l), CmdlineKey+"="))
		if err != nil || !reflect.DeepEqual(back, l) {
			t.Fatalf("%q -> %q -> %q, %v", s, l, back, err)
		}
	})
}

func manyFuncs(n int) string {
	var l []string
	for i := range n {
		l = append(l, "f"+strings.Repeat("x", i))
	}
	return strings.Join(l, ",")
}
