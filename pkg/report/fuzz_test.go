package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRunRecord: any bytes give a record or an error, never a panic;
// a record's variant names all stay inside the run directory.
func FuzzParseRunRecord(f *testing.F) {
	for _, run := range []string{"pass", "slower", "mixed"} {
		b, err := os.ReadFile(filepath.Join(runDir(run), RunFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"variants":["a/../b"]}`))
	f.Add([]byte(`{"variants":[null,1]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRunRecord(b)
		if err != nil {
			return
		}
		for _, v := range r.Variants {
			if CheckVariantName(v) != nil {
				t.Fatalf("accepted variant %q", v)
			}
			if p := filepath.Join("/run", filepath.FromSlash(v)); !filepath.IsAbs(p) || p == "/run" || !bytes.HasPrefix([]byte(p), []byte("/run/")) {
				t.Fatalf("variant %q leaves the run directory: %s", v, p)
			}
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseVariantMeta: any bytes give a meta with a known verdict word or
// an error.
func FuzzParseVariantMeta(f *testing.F) {
	for _, v := range []string{"pass/scx_simple/steady/tiny-1llc", "slower/scx_simple/mixed/tiny-1llc", "mixed/scx_qmap/mixed/tiny-1llc"} {
		b, err := os.ReadFile(filepath.Join("testdata", "runs", v, MetaFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"verdict":"pass","wall_s":1e400}`))
	f.Add([]byte(`{"verdict":"pass","scheduler_args":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseVariantMeta(b)
		if err != nil {
			return
		}
		switch m.Verdict {
		case MetaPass, MetaFail, MetaNoVerdict, MetaError:
		default:
			t.Fatalf("accepted verdict %q", m.Verdict)
		}
	})
}

// FuzzVariant: any stream, meta.json and console bytes load into a variant
// whose reports render (the JUnit as well-formed XML that gives the console
// back), and a pass is only ever a pass of the stream.
func FuzzVariant(f *testing.F) {
	good := buildStream(f, "s/c/p", streamSpec{wakeP99NS: 1e5, samples: 4})
	f.Add(good, []byte(`{"verdict":"pass"}`), []byte("boot\n"))
	f.Add(good[:len(good)-7], []byte(`{"verdict":"fail"}`), []byte("]]>\x00\xff\r\x1b[0m\ufffe"))
	f.Add([]byte{}, []byte(`{`), []byte{})
	f.Fuzz(func(t *testing.T, stream, meta, console []byte) {
		dir := t.TempDir()
		vdir := filepath.Join(dir, "s", "c", "p")
		os.MkdirAll(vdir, 0o755)
		os.WriteFile(filepath.Join(vdir, StreamFile), stream, 0o644)
		os.WriteFile(filepath.Join(vdir, MetaFile), meta, 0o644)
		os.WriteFile(filepath.Join(vdir, ConsoleFile), console, 0o644)
		run, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		v := run.Variants[0]
		if v.Status == StatusPass && (v.Verdict == nil || v.Verdict.Result != "pass") {
			t.Fatalf("a pass the judge does not call one: %+v", v.Verdict)
		}
		for _, fm := range []Format{FormatText, FormatJSON, FormatJUnit, FormatHTML} {
			if err := Write(&bytes.Buffer{}, run, fm); err != nil {
				t.Fatalf("%s: %v", fm, err)
			}
		}
		var ju bytes.Buffer
		WriteJUnit(&ju, run)
		var back junitSuites
		if err := xml.Unmarshal(ju.Bytes(), &back); err != nil {
			t.Fatalf("JUnit is not XML: %v\n%s", err, ju.Bytes())
		}
		got := ""
		if so := back.Suites[0].Cases[0].SystemOut; so != nil {
			got = so.Text
		}
		if got != v.Console {
			t.Fatalf("system-out %q, console %q", got, v.Console)
		}
	})
}
