package kernelsym

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
)

func fixtureVmlinux(t testing.TB) string {
	t.Helper()
	return testenv.Need(t, testenv.VmlinuxVar, "no fixture vmlinux to resolve BTF offsets from")
}

// TestFixtureLayout resolves everything from the 6.12 fixture kernel and
// checks it against the values its BTF and System.map hold.
func TestFixtureLayout(t *testing.T) {
	k, err := Load(fixtureVmlinux(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(k.Banner, []byte("Linux version 6.12")) || k.Banner[len(k.Banner)-1] != 0 || k.Banner[len(k.Banner)-2] != '\n' {
		t.Errorf("banner %q", k.Banner)
	}
	if k.HZ != 1000 || k.PhysicalAlign != 0x200000 {
		t.Errorf("HZ %d align %#x, want 1000 and 0x200000 from the embedded config", k.HZ, k.PhysicalAlign)
	}
	l := k.Layout
	// Offsets as pahole/bpftool print them for this build.
	checks := []struct {
		name string
		f    Field
		off  uint32
		size uint32
	}{
		{"rq.nr_running", l.RqNrRunning, 4, 4},
		{"rq.clock", l.RqClock, 2864, 8},
		{"rq.scx.nr_running", l.RqScxNrRunning, 2280 + 120, 4},
		{"rq.scx.flags", l.RqScxFlags, 2280 + 124, 4},
		{"rq.scx.local_dsq.nr", l.RqScxLocalNr, 2280 + 32, 4},
		{"task_struct.pid", l.TaskPID, 1608, 4},
		{"task_struct.comm", l.TaskComm, 2096, 16},
		{"sched_ext_ops.name", l.OpsName, 296, 128},
		{"scx_exit_info.kind", l.ExitInfoKind, 0, 4},
	}
	for _, c := range checks {
		if c.f.Off != c.off || c.f.Size != c.size {
			t.Errorf("%s = %+v, want off %d size %d", c.name, c.f, c.off, c.size)
		}
	}
	if !l.RqCurr.OK() || l.RqCurr.Size != 8 {
		t.Errorf("rq.curr = %+v", l.RqCurr)
	}
	if l.EnableStates[1] != "SCX_OPS_ENABLED" || l.ExitKinds[1026] != "SCX_EXIT_ERROR_STALL" {
		t.Errorf("enums: %v %v", l.EnableStates, l.ExitKinds)
	}
	if l.HasEventStats {
		t.Error("6.12 has no struct scx_event_stats, but BTF says it does")
	}
	if !k.HasSchedExt() {
		t.Error("fixture kernel has sched_ext")
	}
	// The ELF symbol table and System.map agree.
	sm := testenv.Lookup(testenv.SystemMapVar)
	if sm == "" {
		t.Log("KTSTR_SYSTEM_MAP not set: not comparing against System.map")
		return
	}
	k2, err := Load(k.Path, sm)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Required {
		if k.Symbols[n] != k2.Symbols[n] {
			t.Errorf("%s: ELF %#x, System.map %#x", n, k.Symbols[n], k2.Symbols[n])
		}
	}
	if k.Symbols["runqueues"] >= 1<<32 {
		t.Errorf("runqueues %#x is not a zero-based per-CPU offset", k.Symbols["runqueues"])
	}
}

func TestParseSystemMap(t *testing.T) {
	tests := []struct {
		in   string
		want Symbols
		err  bool
	}{
		{"ffffffff82120f00 D linux_banner\n000000000002fb00 D runqueues\nffffffff81000000 T unrelated\n", Symbols{"linux_banner": 0xffffffff82120f00, "runqueues": 0x2fb00}, false},
		{"\n\n", Symbols{}, false},
		{"zz D linux_banner\n", nil, true},
		{"ffffffff82120f00 linux_banner\n", nil, true},
	}
	for i, tc := range tests {
		got, err := ParseSystemMap(strings.NewReader(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%d: err %v", i, err)
			continue
		}
		if !tc.err && len(got) != len(tc.want) {
			t.Errorf("%d: %v, want %v", i, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%d: %s = %#x, want %#x", i, k, got[k], v)
			}
		}
	}
}

func ikconfig(text string) []byte {
	var b bytes.Buffer
	b.WriteString("junkIKCFG_ST")
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(text))
	zw.Close()
	b.WriteString("IKCFG_ED")
	return b.Bytes()
}

func TestParseIKConfig(t *testing.T) {
	cfg, err := ParseIKConfig(ikconfig("# comment\nCONFIG_HZ=300\nCONFIG_LOCALVERSION=\"-x\"\n# CONFIG_FOO is not set\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg["CONFIG_HZ"] != "300" || cfg["CONFIG_LOCALVERSION"] != "-x" || len(cfg) != 2 {
		t.Errorf("%v", cfg)
	}
	k := &Kernel{Config: cfg, HZ: DefaultHZ}
	k.applyConfig()
	if k.HZ != 300 {
		t.Errorf("HZ %d", k.HZ)
	}
	if _, err := ParseIKConfig([]byte("no marker")); err == nil {
		t.Error("blob without gzip stream accepted")
	}
	if cfg, err := ParseIKConfig(ikconfig("CONFIG_HZ=100\n")[len("junkIKCFG_ST"):]); err != nil || cfg["CONFIG_HZ"] != "100" {
		t.Errorf("bare gzip stream (6.x layout): %v %v", cfg, err)
	}
	if _, err := ParseIKConfig([]byte("IKCFG_STnot gzip")); err == nil {
		t.Error("non-gzip blob accepted")
	}
}

func FuzzParseSystemMap(f *testing.F) {
	f.Add("ffffffff82120f00 D linux_banner\n")
	f.Add("x\n")
	f.Fuzz(func(t *testing.T, s string) {
		ParseSystemMap(strings.NewReader(s))
	})
}

func FuzzParseIKConfig(f *testing.F) {
	f.Add(ikconfig("CONFIG_HZ=1000\n"))
	f.Add([]byte("IKCFG_ST\x1f\x8b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseIKConfig(b)
	})
}
