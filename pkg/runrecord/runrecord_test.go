package runrecord

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVariant(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Variant
		err  string
	}{
		{"eevdf/steady/tiny-1llc", Variant{Scheduler: "eevdf", Scenario: "steady", Preset: "tiny-1llc"}, ""},
		{"scx_simple/steady/tiny-1llc/6.12.117", Variant{"scx_simple", "steady", "tiny-1llc", "6.12.117", 0}, ""},
		{"scx_simple/steady/tiny-1llc/rep3", Variant{"scx_simple", "steady", "tiny-1llc", "", 3}, ""},
		{"a/b/c/k/rep12", Variant{"a", "b", "c", "k", 12}, ""},
		{"a/b", Variant{}, "want sched/scenario/preset"},
		{"a/b/c/d/e", Variant{}, "want sched"},
		{"a/b/c/d/e/rep1", Variant{}, "want sched"},
		{"a/../c", Variant{}, "starts with"},
		{"a//c", Variant{}, "empty"},
		{"/a/b/c", Variant{}, "empty"},
		{"a/b/c/rep0", Variant{}, "bad repetition"},
		{"a/b/c/rep01", Variant{}, "bad repetition"},
		{"a/b/rep1", Variant{}, "looks like a repetition"},
		{"a b/c/d", Variant{}, "not allowed"},
		{"a/b/c/rep1/rep2", Variant{}, "looks like a repetition"},
		{strings.Repeat("a", 65) + "/b/c", Variant{}, "longer than 64"},
	} {
		got, err := ParseVariant(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
		if got.String() != c.in {
			t.Errorf("%q: String() = %q", c.in, got.String())
		}
	}
}

func FuzzParseVariant(f *testing.F) {
	for _, s := range []string{"a/b/c", "a/b/c/k/rep2", "../x/y", "a/b/c/rep0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVariant(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("%q parsed to %+v, printed %q", s, v, v.String())
		}
		p := filepath.Clean(VariantDir("/r", s))
		if !strings.HasPrefix(p, "/r/") || strings.Contains(s, "..") && strings.Contains("/"+s+"/", "/../") {
			t.Fatalf("%q escapes the run directory: %s", s, p)
		}
	})
}

func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(`{"variant":"a/b/c","verdict":"pass","wall_s":1}`))
	f.Add([]byte(`{"variant":"a/b/c","verdict":"pass"} x`))
	f.Add([]byte(`{"variant":"a/b/c","verdict":"pass","wall_s":1e400}`))
	f.Add([]byte(`{"variant":"a/b/c","verdict":"pass","scheduler_args":"x"}`))
	f.Add([]byte(`{"variant":"a/b/c","verdict":"pass","wall_s":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMeta(b)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		switch m.Verdict {
		case Pass, Fail, NoVerdict, Error:
		default:
			t.Fatalf("accepted verdict %q", m.Verdict)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	r := &Run{Suite: "s.json", SuiteSHA256: "ab", Started: now, Host: "h", KtstrVersion: "v", Engine: EngineMake,
		Variants: []string{"eevdf/steady/tiny-1llc", "scx_simple/steady/tiny-1llc"}}
	if err := WriteRun(dir, r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, RunFile))
	if strings.Contains(string(b), `"ended"`) {
		t.Errorf("ended written while running: %s", b)
	}
	m := &Meta{Variant: "eevdf/steady/tiny-1llc", Scheduler: "eevdf", SchedulerArgs: []string{}, Scenario: "steady",
		Preset: "tiny-1llc", Topology: "1n1l4c1t", Rep: 1, Started: now, Ended: now.Add(2 * time.Second), WallS: 2,
		ExitCode: 0, Verdict: VerdictOf(0), Reason: "PASS"}
	if err := WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	rec, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Metas) != 1 || rec.Metas[0].Verdict != Pass || rec.Metas[0].Ended != m.Ended {
		t.Errorf("metas %+v", rec.Metas)
	}
	if len(rec.Missing) != 1 || rec.Missing[0] != "scx_simple/steady/tiny-1llc" {
		t.Errorf("missing %v", rec.Missing)
	}
	if _, err := ReadMeta(dir, "scx_simple/steady/tiny-1llc"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing meta: %v", err)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s", e.Name())
		}
	}
	// A meta.json naming another variant, or a bad verdict, is refused.
	os.WriteFile(filepath.Join(VariantDir(dir, "scx_simple/steady/tiny-1llc"), MetaFile), nil, 0o644)
	os.MkdirAll(VariantDir(dir, "scx_simple/steady/tiny-1llc"), 0o755)
	os.WriteFile(filepath.Join(VariantDir(dir, "scx_simple/steady/tiny-1llc"), MetaFile),
		[]byte(`{"variant":"eevdf/steady/tiny-1llc","verdict":"pass"}`), 0o644)
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "names variant") {
		t.Errorf("mismatched variant: %v", err)
	}
	if _, err := ParseMeta([]byte(`{"variant":"a/b/c","verdict":"maybe"}`)); err == nil {
		t.Error("bad verdict accepted")
	}
	if _, err := ParseMeta([]byte(`{"variant":"a/b/c","verdict":"pass","reason":"a\nb"}`)); err == nil {
		t.Error("two-line reason accepted")
	}
	if _, err := ParseRun([]byte(`{"started":"2026-01-01T00:00:00Z","engine":"make","variants":["a/b/c","a/b/c"]}`)); err == nil {
		t.Error("duplicate variant accepted")
	}
}

func TestVerdictOf(t *testing.T) {
	for code, want := range map[int]string{0: Pass, 1: Fail, 2: Error, 3: NoVerdict, 4: Error, -1: Error} {
		if got := VerdictOf(code); got != want {
			t.Errorf("VerdictOf(%d) = %s, want %s", code, got, want)
		}
	}
}

func FuzzParseRun(f *testing.F) {
	f.Add([]byte(`{"started":"2026-01-01T00:00:00Z","engine":"make","variants":["a/b/c"]}`))
	f.Add([]byte(`{"started":"2026-01-01T00:00:00Z","engine":"slurm","variants":["../b/c"]}`))
	f.Add([]byte(`{"started":"2026-01-01T00:00:00Z","engine":"make","variants":["a/../b"]}`))
	f.Add([]byte(`{"started":"2026-01-01T00:00:00Z","engine":"make","variants":[null,1]}`))
	f.Add([]byte(`{"suite":"s.json","suite_sha256":"ab","started":"2026-12-06T08:00:00Z","ended":"2026-12-06T08:10:00Z",` +
		`"host":"h","ktstr_version":"v","engine":"parallel","variants":["eevdf/steady/tiny-1llc","scx_simple/steady/tiny-1llc/6.12/rep2"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRun(b)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		// Every variant the record names stays inside the run directory.
		for _, v := range r.Variants {
			if p := VariantDir("/run", v); p == "/run" || !strings.HasPrefix(p, "/run/") || strings.Contains("/"+v+"/", "/../") {
				t.Fatalf("variant %q leaves the run directory: %s", v, p)
			}
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMakePart(t *testing.T) {
	for in, want := range map[string]string{
		"6.12.0-ktstr":                "6.12.0-ktstr",
		"bzImage":                     "bzImage",
		"6.12 (ktstr)/x":              "6.12__ktstr__x",
		"":                            "k",
		".config":                     "k.config",
		"-rc1":                        "k-rc1",
		"rep3":                        "krep3",
		strings.Repeat("a", 70):       strings.Repeat("a", 64),
		"." + strings.Repeat("a", 70): "k." + strings.Repeat("a", 62),
	} {
		if got := MakePart(in, "k"); got != want {
			t.Errorf("MakePart(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMakePart: any text becomes a valid part; a valid part stays itself.
func FuzzMakePart(f *testing.F) {
	for _, s := range []string{"6.12.0", "", "rep1", "../..", "\xff\x00", strings.Repeat("-", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := MakePart(s, "k")
		if err := ValidPart(p); err != nil {
			t.Fatalf("MakePart(%q) = %q: %v", s, p, err)
		}
		if ValidPart(s) == nil && p != s {
			t.Fatalf("MakePart(%q) changed a valid part to %q", s, p)
		}
	})
}
