package report

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// FuzzVariant: any stream, meta.json and console bytes load into a variant
// whose reports render (the JUnit as well-formed XML that gives the console
// back), and a pass is only ever a pass of the stream.
func FuzzVariant(f *testing.F) {
	good := buildStream(f, "s/c/p", streamSpec{wakeP99NS: 1e5, samples: 4})
	f.Add(good, []byte(`{"variant":"s/c/p","verdict":"pass"}`), []byte("boot\n"))
	f.Add(good[:len(good)-7], []byte(`{"variant":"s/c/p","verdict":"fail"}`), []byte("]]>\x00\xff\r\x1b[0m\ufffe"))
	f.Add([]byte{}, []byte(`{`), []byte{})
	f.Fuzz(func(t *testing.T, stream, meta, console []byte) {
		dir := t.TempDir()
		vdir := filepath.Join(dir, "s", "c", "p")
		os.MkdirAll(vdir, 0o755)
		os.WriteFile(filepath.Join(vdir, runrecord.StreamFile), stream, 0o644)
		os.WriteFile(filepath.Join(vdir, runrecord.MetaFile), meta, 0o644)
		os.WriteFile(filepath.Join(vdir, runrecord.ConsoleFile), console, 0o644)
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
