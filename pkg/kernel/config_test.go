package kernel

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"basic", "#\n# Automatically generated\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_S=\"x y\"\nCONFIG_N=0x10\n",
			map[string]string{"A": "y", "B": "m", "S": `"x y"`, "N": "0x10"}, false},
		{"later wins", "CONFIG_A=y\n# CONFIG_A is not set\nCONFIG_B=m\nCONFIG_B=y\n", map[string]string{"B": "y"}, false},
		{"=n unsets", "CONFIG_A=y\nCONFIG_A=n\nCONFIG_B=y\n", map[string]string{"B": "y"}, false},
		{"crlf and blanks", "\r\n  CONFIG_A=y\r\n\n", map[string]string{"A": "y"}, false},
		{"only not-set lines", "# CONFIG_MODULES is not set\n", map[string]string{}, false},
		{"empty", "", nil, true},
		{"only comments", "# hello\n# world\n", nil, true},
		{"garbage line", "CONFIG_A=y\nhello world\n", nil, true},
		{"bad symbol", "CONFIG_A-B=y\n", nil, true},
		{"no prefix", "A=y\n", nil, true},
		{"binary", "\x7fELF\x02\x01\x01", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(strings.NewReader(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrNotConfig) {
					t.Fatalf("err = %v, want ErrNotConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got.Get("CONFIG_"+k) != v || got.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, got.Get(k), v)
				}
			}
		})
	}
}

func TestParseConfigTooBig(t *testing.T) {
	big := bytes.Repeat([]byte("CONFIG_ABCDEFGH=y\n"), MaxConfigSize/18+2)
	if _, err := ParseConfig(bytes.NewReader(big)); !errors.Is(err, ErrNotConfig) {
		t.Fatalf("err = %v, want ErrNotConfig for %d bytes", err, len(big))
	}
}

func TestCheck(t *testing.T) {
	all := Config{}
	for _, it := range Items() {
		for _, s := range it.Syms {
			all[s] = "y"
		}
	}
	clone := func(edit func(Config)) Config {
		c := Config{}
		for k, v := range all {
			c[k] = v
		}
		edit(c)
		return c
	}
	tests := []struct {
		name             string
		cfg              Config
		baselineOnly     bool
		usable, baseline bool
		bad              string // the item that must not be OK
		wantInLine       string
	}{
		{"everything", all, false, true, true, "", ""},
		{"no sched_ext", clone(func(c Config) { delete(c, "SCHED_CLASS_EXT") }), false, false, true, "sched_ext", "no CONFIG_SCHED_CLASS_EXT: only EEVDF baselines can run"},
		{"no sched_ext, baseline", clone(func(c Config) { delete(c, "SCHED_CLASS_EXT") }), true, true, true, "sched_ext", "only EEVDF baselines"},
		{"virtio-mmio module", clone(func(c Config) { c["VIRTIO_MMIO"] = "m" }), true, false, false, "virtio-mmio command-line devices", "CONFIG_VIRTIO_MMIO=m (a module; ktstr guests load none)"},
		{"no cmdline devices", clone(func(c Config) { delete(c, "VIRTIO_MMIO_CMDLINE_DEVICES") }), false, false, false, "virtio-mmio command-line devices", "no frames, no verdict"},
		{"no 8250 console is a feature", clone(func(c Config) { delete(c, "SERIAL_8250_CONSOLE") }), false, true, true, "8250 console", "panics are invisible"},
		{"no NUMA", clone(func(c Config) { delete(c, "NUMA") }), false, true, true, "NUMA", "boots as one node"},
		{"virtio console module", clone(func(c Config) { c["VIRTIO_CONSOLE"] = "m" }), false, false, false, "virtio console", "=m"},
		{"no BTF", clone(func(c Config) { delete(c, "DEBUG_INFO_BTF") }), false, false, true, "BTF", "CO-RE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.cfg, "test", tt.baselineOnly)
			if r.Usable != tt.usable || r.Baseline != tt.baseline {
				t.Errorf("usable=%v baseline=%v, want %v %v", r.Usable, r.Baseline, tt.usable, tt.baseline)
			}
			for _, res := range r.Results {
				if (res.Name == tt.bad) == res.OK {
					t.Errorf("%s: ok=%v", res.Name, res.OK)
				}
			}
			var buf bytes.Buffer
			r.Print(&buf)
			out := buf.String()
			if n := strings.Count(out, "\n"); n != len(Items())+2 {
				t.Errorf("%d lines, want one per item plus source and verdict:\n%s", n, out)
			}
			if tt.wantInLine != "" && !strings.Contains(out, tt.wantInLine) {
				t.Errorf("output lacks %q:\n%s", tt.wantInLine, out)
			}
		})
	}
}

// TestFragmentPassesCheck: a kernel configured with exactly ktstr's
// fragment is usable (the fragment covers every item Check asks for).
func TestFragmentPassesCheck(t *testing.T) {
	cfg, err := ParseConfig(bytes.NewReader(Fragment()))
	if err != nil {
		t.Fatal(err)
	}
	r := Check(cfg, "fragment", false)
	for _, res := range r.Results {
		if !res.OK {
			t.Errorf("the fragment does not set %s: %v", res.Name, res.Missing)
		}
	}
	if cfg.Get("MODULES") != "" {
		t.Errorf("the fragment must turn modules off")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("CONFIG_A=y\n# CONFIG_B is not set\n"))
	f.Add(Fragment())
	f.Add([]byte("CONFIG_=y\n#CONFIG_X is not set"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrNotConfig) {
				t.Fatalf("error not ErrNotConfig: %v", err)
			}
			return
		}
		for k, v := range cfg {
			if !validSym(k) || v == "n" {
				t.Fatalf("bad entry %q=%q", k, v)
			}
		}
		Check(cfg, "fuzz", false)
	})
}

func TestLacking(t *testing.T) {
	cfg, _ := ParseConfig(bytes.NewReader(Fragment()))
	cfg["VIRTIO_MMIO"] = "m"
	delete(cfg, "SCHED_CLASS_EXT")
	r := Check(cfg, "t", false)
	if got := r.Lacking(Boot); len(got) != 1 || got[0] != "virtio-mmio command-line devices (CONFIG_VIRTIO_MMIO=m)" {
		t.Errorf("Lacking(Boot) = %q", got)
	}
	if got := r.Lacking(SchedExt); len(got) != 1 || got[0] != "sched_ext (CONFIG_SCHED_CLASS_EXT)" {
		t.Errorf("Lacking(SchedExt) = %q", got)
	}
}
