package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestRepro: a variant with repro.ktstr has its timeline, stitched by
// pkg/decode exactly as ktstr-gauntlet's repro-timeline.txt holds it; the
// text report names it and the JSON carries it; a variant without one has
// none; a broken one says why.
func TestRepro(t *testing.T) {
	run := mustLoad(t, runDir("slower"))
	v := run.Variant("scx_simple/mixed/tiny-1llc")
	if v.Repro == nil || v.Repro.Timeline == nil || v.Repro.Error != "" {
		t.Fatalf("repro %+v", v.Repro)
	}
	tl := v.Repro.Timeline
	if !tl.Probes || tl.Trigger != "scx_ops_exit_kind" || tl.Total != 4 || len(tl.Events) != 4 || len(tl.Tasks) != 2 ||
		!tl.Tasks[0].Named || tl.Tasks[0].PID != 73 {
		t.Errorf("timeline %+v", tl)
	}
	file, err := os.ReadFile(filepath.Join(runDir("slower"), "scx_simple", "mixed", "tiny-1llc", runrecord.ReproTimelineFile))
	if err != nil || string(tl.AppendText(nil)) != string(file) {
		t.Errorf("the report's timeline is not the recorded one (%v):\n%s\n---\n%s", err, tl.AppendText(nil), file)
	}
	for _, p := range run.Variants {
		if p.Name != v.Name && p.Repro != nil {
			t.Errorf("%s has a repro", p.Name)
		}
	}
	var txt bytes.Buffer
	if err := WriteText(&txt, run); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), "auto-repro: scx_simple/mixed/tiny-1llc: 4 probe events, trigger scx_ops_exit_kind; ktstr-decode --timeline ") ||
		strings.Count(txt.String(), "auto-repro:") != 1 {
		t.Errorf("text:\n%s", txt.String())
	}
	// JUnit: the failure carries the timeline.
	var ju bytes.Buffer
	if err := WriteJUnit(&ju, run); err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(ju.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	for _, c := range suites.Suites[0].Cases {
		has := c.Failure != nil && strings.Contains(c.Failure.Text, "auto-repro timeline\n") && strings.Contains(c.Failure.Text, ">>       0.000")
		if has != (c.Name == v.Name) {
			t.Errorf("JUnit %s: timeline in the failure %v:\n%+v", c.Name, has, c.Failure)
		}
	}
	var js bytes.Buffer
	WriteJSON(&js, run)
	var back struct {
		Variants []struct {
			Variant string `json:"variant"`
			Repro   *struct {
				Timeline struct {
					Trigger string `json:"trigger"`
					Events  []struct {
						RelMS string `json:"rel_ms"`
						Func  string `json:"func"`
					} `json:"events"`
				} `json:"timeline"`
			} `json:"repro"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range back.Variants {
		if x.Repro != nil {
			found = x.Variant == v.Name && x.Repro.Timeline.Trigger == "scx_ops_exit_kind" && len(x.Repro.Timeline.Events) == 4 &&
				x.Repro.Timeline.Events[3].RelMS == "0.000"
		}
	}
	if !found {
		t.Errorf("JSON repro:\n%s", js.String())
	}

	// Broken: garbage (no probe frames), a directory, hostile strings.
	for _, c := range []struct {
		name  string
		setup func(p string)
		err   string
	}{
		{"garbage", func(p string) { os.WriteFile(p, []byte("not a stream"), 0o644) }, "no probe_meta frame"},
		{"directory", func(p string) { os.Mkdir(p, 0o755) }, "directory"},
		{"hostile", func(p string) { os.WriteFile(p, hostileRepro(t), 0o644) }, ""},
	} {
		dir := writeRun(t, buildStream(t, "s/c/p", streamSpec{failCheck: true}), nil)
		c.setup(filepath.Join(dir, "s", "c", "p", runrecord.ReproStreamFile))
		run := mustLoad(t, dir)
		r := run.Variants[0].Repro
		if r == nil || !strings.Contains(r.Error, c.err) || (c.err == "") != (r.Error == "") {
			t.Errorf("%s: repro %+v", c.name, r)
		}
		for _, f := range []Format{FormatText, FormatHTML, FormatJSON} {
			var out bytes.Buffer
			if err := Write(&out, run, f); err != nil {
				t.Fatalf("%s: %s: %v", c.name, f, err)
			}
			if bytes.ContainsAny(out.Bytes(), "\x1b\x07") || f == FormatHTML && bytes.Contains(out.Bytes(), []byte("<evil>")) {
				t.Errorf("%s: %s output carries the guest's control characters or markup:\n%s", c.name, f, out.String())
			}
		}
	}
}

// hostileRepro is a repro stream whose strings carry terminal escapes and
// markup.
func hostileRepro(t testing.TB) []byte {
	var b bytes.Buffer
	enc := wire.NewEncoder(&b)
	pid := 5
	for _, m := range []wire.Message{
		wire.ProbeMeta{Stage: wire.ProbeStageAttached, Attached: []wire.ProbeAttach{{Func: "<evil>\x1b[2J", Kind: "kprobe"}}},
		wire.ProbeEvent{TimeNS: 1, PID: 5, Comm: "<evil>\x1b]0;x\x07", Func: "fn<evil>", TaskPID: &pid, TaskComm: "\x1b<evil>",
			Trigger: true, Stack: []string{"<evil>\x1b"}, Text: "<evil>\x1b"},
		wire.SchedExit{Kind: 1024, KindName: "<evil>", Message: "<evil>[5]\x1b[31m"},
	} {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// FuzzRepro: whatever the repro stream holds, every format renders and
// no control character of it reaches the text report.
func FuzzRepro(f *testing.F) {
	f.Add(reproStream(f, "scx_x"))
	f.Add(hostileRepro(f))
	f.Add([]byte{})
	stream := buildStream(f, "s/c/p", streamSpec{failCheck: true, bpf: []uint32{1, 2}})
	f.Fuzz(func(t *testing.T, repro []byte) {
		dir := t.TempDir()
		vdir := filepath.Join(dir, "s", "c", "p")
		os.MkdirAll(vdir, 0o755)
		os.WriteFile(filepath.Join(vdir, runrecord.StreamFile), stream, 0o644)
		os.WriteFile(filepath.Join(vdir, runrecord.ReproStreamFile), repro, 0o644)
		run, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if run.Variants[0].Repro == nil {
			t.Fatal("repro.ktstr not read")
		}
		for _, fm := range []Format{FormatText, FormatJSON, FormatJUnit, FormatHTML} {
			var out bytes.Buffer
			if err := Write(&out, run, fm); err != nil {
				t.Fatalf("%s: %v", fm, err)
			}
			if fm == FormatText && bytes.ContainsAny(out.Bytes(), "\x1b\x07\x00\r") {
				t.Fatalf("text carries control characters: %q", out.String())
			}
			if fm == FormatJUnit {
				if err := xml.Unmarshal(out.Bytes(), &junitSuites{}); err != nil {
					t.Fatalf("JUnit is not XML: %v\n%s", err, out.String())
				}
			}
		}
	})
}
