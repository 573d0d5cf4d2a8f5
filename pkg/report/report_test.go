package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
	"github.com/ktstr-go/ktstr/pkg/verdict"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

func runDir(name string) string { return filepath.Join("testdata", "runs", name) }

func mustLoad(t *testing.T, dir string) *Run {
	t.Helper()
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoadStatuses(t *testing.T) {
	run := mustLoad(t, runDir("mixed"))
	cases := []struct {
		variant  string
		status   Status
		reason   string // substring
		mismatch bool
		note     string // substring of a note
	}{
		{"eevdf/steady/tiny-1llc", StatusPass, "2 check(s) passed", false, ""},
		{"scx_qmap/steady/tiny-1llc", StatusFail, "check starvation failed", false, ""},
		{"scx_qmap/mixed/tiny-1llc", StatusError, "stream missing (meta.json: error: ktstr-run: scheduler binary not found)", false, ""},
		{"scx_qmap/steady/numa2-4llc", StatusNoVerdict, "stream truncated at byte", false, ""},
		{"scx_qmap/burst/tiny-1llc", StatusFail, "meta.json says fail: ktstr-run exited 1 (the stream alone would pass)", true, ""},
		{"scx_lavd/steady/tiny-1llc", StatusNoVerdict, "stream missing", false, "meta.json missing"},
		{"scx_lavd/steady/tiny-1llc/rep2", StatusPass, "", false, "meta.json unusable"},
	}
	if len(run.Variants) != len(cases) {
		t.Fatalf("%d variants, want %d", len(run.Variants), len(cases))
	}
	for _, c := range cases {
		v := run.Variant(c.variant)
		if v == nil {
			t.Errorf("%s: missing", c.variant)
			continue
		}
		if v.Status != c.status || !strings.Contains(v.Reason, c.reason) {
			t.Errorf("%s: %s %q, want %s containing %q", c.variant, v.Status, v.Reason, c.status, c.reason)
		}
		if (v.Mismatch != "") != c.mismatch {
			t.Errorf("%s: mismatch %q, want mismatch=%v", c.variant, v.Mismatch, c.mismatch)
		}
		if c.note != "" && !strings.Contains(strings.Join(v.Notes, "\n"), c.note) {
			t.Errorf("%s: notes %q lack %q", c.variant, v.Notes, c.note)
		}
	}
	want := Counts{Pass: 2, Fail: 2, NoVerdict: 2, Error: 1}
	if run.Counts != want || run.AllPass() {
		t.Errorf("counts %+v (all pass %v), want %+v", run.Counts, run.AllPass(), want)
	}
	if !mustLoad(t, runDir("pass")).AllPass() {
		t.Error("the pass run does not pass")
	}
}

// TestNeverAPassTheJudgeRefuses re-judges every fixture stream directly
// and checks that no variant the report calls a pass is anything else to
// pkg/verdict.
func TestNeverAPassTheJudgeRefuses(t *testing.T) {
	for _, name := range []string{"pass", "slower", "mixed", "gauntlet-qemu"} {
		run := mustLoad(t, runDir(name))
		for _, v := range run.Variants {
			if v.Status != StatusPass {
				continue
			}
			f, err := os.Open(filepath.Join(runDir(name), v.Name, runrecord.StreamFile))
			if err != nil {
				t.Fatalf("%s/%s: a pass without a stream: %v", name, v.Name, err)
			}
			vd, err := verdict.JudgeStream(f)
			f.Close()
			if err != nil || vd.Result != verdict.Pass {
				t.Errorf("%s/%s: report says pass, the judge says %s (%v)", name, v.Name, vd.Result, err)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	run := mustLoad(t, runDir("pass"))
	v := run.Variant("scx_simple/steady/tiny-1llc")
	want := map[string]float64{
		MetricWall:          15,
		MetricIterations:    2*4*50000 + 2*2*100, // 2 steps x 4 workers, the second worker of each cgroup +100
		MetricIterPerWorker: 50000,
		MetricSpread:        4,
		MetricGap:           3.1,
		MetricMigrations:    2 * 4 * 40,
		MetricWakeP99:       81,
		MetricWakeP50:       20,
		MetricDSQ:           2,
		MetricImbalance:     5, // CPU 0 runs 3 deeper: (0+3+2)/max(0,1)
		MetricViolations:    0,
	}
	for k, x := range want {
		if got, ok := v.Metrics[k]; !ok || got != x {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, x)
		}
	}
	// Without wake-latency fields the metrics are absent, not 0.
	nw := run.Variant("scx_simple/mixed/tiny-1llc")
	for _, k := range []string{MetricWakeP99, MetricWakeP50} {
		if x, ok := nw.Metrics[k]; ok {
			t.Errorf("no-wake variant has %s = %v", k, x)
		}
	}
	for _, c := range nw.Cgroups {
		if c.HasWake {
			t.Errorf("no-wake variant: cgroup %s has wake latency", c.Cgroup)
		}
	}
	if len(v.Cgroups) != 2 || v.Cgroups[0].Workers != 2 || !v.Cgroups[1].HasWake || v.Cgroups[1].WakeP99US != 81 {
		t.Errorf("cgroups %+v", v.Cgroups)
	}
	if s := v.Cgroups[0]; s.MinShare != 0.5 || s.MaxShare != 0.525 || s.CPUShare != 0.5125 {
		t.Errorf("cg0 share %+v", s)
	}
	rq := v.RunQueue
	if rq == nil || len(rq.CPUs) != 4 || len(rq.TimeS) != 20 || rq.Max != 5 || rq.Stride != 1 {
		t.Fatalf("runqueue %+v", rq)
	}
}

// writeRun builds a one-variant run directory with the given stream bytes
// (nil: none) and meta.json (nil: none).
func writeRun(t *testing.T, stream []byte, meta []byte) string {
	t.Helper()
	dir := t.TempDir()
	vdir := filepath.Join(dir, "s", "c", "p")
	os.MkdirAll(vdir, 0o755)
	if stream != nil {
		os.WriteFile(filepath.Join(vdir, runrecord.StreamFile), stream, 0o644)
	}
	if meta != nil {
		os.WriteFile(filepath.Join(vdir, runrecord.MetaFile), meta, 0o644)
	}
	return dir
}

func TestBrokenInputs(t *testing.T) {
	good := buildStream(t, "s/c/p", streamSpec{wakeP99NS: 1e5})
	garbage := bytes.Repeat([]byte("not a ktstr stream at all "), 1000)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0xff
	cases := []struct {
		name   string
		stream []byte
		meta   string
		status Status
		reason string
	}{
		{"good", good, "", StatusPass, "check(s) passed"},
		{"empty stream", []byte{}, "", StatusNoVerdict, "empty stream"},
		{"garbage", garbage, "", StatusNoVerdict, "no frame in"},
		{"cut in half", good[:len(good)/2], "", StatusNoVerdict, ""},
		{"one byte flipped", flipped, "", StatusNoVerdict, "corrupt region"},
		{"meta says pass, stream fails", buildStream(t, "s/c/p", streamSpec{failCheck: true}), `{"variant":"s/c/p","verdict":"pass"}`, StatusFail, "check starvation failed"},
		{"meta with a bad verdict word", good, `{"variant":"s/c/p","verdict":"PASSED"}`, StatusPass, ""},
		{"meta not JSON", good, "\x00\x01", StatusPass, ""},
		{"meta of another variant", good, `{"variant":"s/c/q","verdict":"fail"}`, StatusPass, ""},
		{"meta without a variant", good, `{"verdict":"fail"}`, StatusPass, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var meta []byte
			if c.meta != "" {
				meta = []byte(c.meta)
			}
			run := mustLoad(t, writeRun(t, c.stream, meta))
			if len(run.Variants) != 1 {
				t.Fatalf("%d variants", len(run.Variants))
			}
			v := run.Variants[0]
			if v.Status != c.status || !strings.Contains(v.Reason, c.reason) {
				t.Errorf("%s %q, want %s containing %q", v.Status, v.Reason, c.status, c.reason)
			}
			if c.meta == `{"variant":"s/c/p","verdict":"pass"}` && v.Mismatch == "" {
				t.Error("no mismatch flagged")
			}
			if c.status == StatusPass && c.meta != "" && (v.Meta != nil || v.Mismatch != "" || !strings.Contains(strings.Join(v.Notes, " "), "meta.json unusable")) {
				t.Errorf("an unusable meta.json was used: meta %v mismatch %q notes %q", v.Meta != nil, v.Mismatch, v.Notes)
			}
			for _, f := range []Format{FormatText, FormatJSON, FormatJUnit, FormatHTML} {
				if err := Write(&bytes.Buffer{}, run, f); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

func TestStreamIsADirectory(t *testing.T) {
	dir := writeRun(t, nil, nil)
	os.Mkdir(filepath.Join(dir, "s", "c", "p", runrecord.StreamFile), 0o755)
	run := mustLoad(t, dir)
	if v := run.Variants[0]; v.Status != StatusNoVerdict || !strings.Contains(v.Reason, "stream unreadable") {
		t.Errorf("%s %q", v.Status, v.Reason)
	}
}

// TestFIFOs: a FIFO in place of any file is reported, not opened (which
// would block for ever).
func TestFIFOs(t *testing.T) {
	dir := writeRun(t, nil, nil)
	vdir := filepath.Join(dir, "s", "c", "p")
	for _, n := range []string{runrecord.StreamFile, runrecord.MetaFile, runrecord.ConsoleFile} {
		if err := syscall.Mkfifo(filepath.Join(vdir, n), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	syscall.Mkfifo(filepath.Join(dir, runrecord.RunFile), 0o644)
	run := mustLoad(t, dir)
	v := run.Variants[0]
	if v.Status != StatusNoVerdict || !strings.Contains(v.Reason, "not a regular file") || !strings.Contains(run.RecordErr, "not a regular file") {
		t.Errorf("%s %q; run.json: %q", v.Status, v.Reason, run.RecordErr)
	}
}

func TestRunRecordProblems(t *testing.T) {
	const head = `{"started":"2026-12-06T08:00:00Z","engine":"make",`
	for _, c := range []struct{ body, want string }{
		{head + `"variants":["../../etc"]}`, `name ".." starts with '.'`},
		{head + `"variants":["/abs/b/c"]}`, "empty name"},
		{head + `"variants":["a/b"]}`, "want sched/scenario/preset"},
		{head + `"variants":"x"}`, "cannot unmarshal"},
		{`{"engine":"make"}`, "no started time"},
		{head + `"variants":[]} {}`, "trailing data"},
		{`{`, "unexpected EOF"},
	} {
		dir := writeRun(t, buildStream(t, "s/c/p", streamSpec{}), nil)
		os.WriteFile(filepath.Join(dir, runrecord.RunFile), []byte(c.body), 0o644)
		run := mustLoad(t, dir)
		if !strings.Contains(run.RecordErr, c.want) || run.Record != nil {
			t.Errorf("%s: record error %q, want %q", c.body, run.RecordErr, c.want)
		}
		if len(run.Variants) != 1 || run.Variants[0].Name != "s/c/p" {
			t.Errorf("%s: variants from the walk lost", c.body)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("a missing run directory loaded")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as run directory: %v", err)
	}
	// No variant at all: not a pass.
	if run := mustLoad(t, t.TempDir()); run.AllPass() || len(run.Variants) != 0 {
		t.Error("an empty run directory passes")
	}
}

// TestForgedAndHugeMonitor: monitor samples without the host flag (a guest
// forging them) are not plotted; many samples are downsampled; CPU ids
// beyond the plot are counted, not kept.
func TestForgedAndHugeMonitor(t *testing.T) {
	var b bytes.Buffer
	guest := wire.NewEncoder(&b)
	host := wire.NewEncoder(&b, wire.WithFlags(wire.FlagHost))
	guest.Encode(wire.MonitorSample{Seq: 1, CPUs: []wire.CPUSample{{CPU: 0, NrRunning: 99, LocalDSQ: 99}}})
	for i := 0; i < 5000; i++ {
		host.Encode(wire.MonitorSample{Seq: uint64(i), ElapsedNS: uint64(i) * 1e6,
			CPUs: []wire.CPUSample{{CPU: 0, NrRunning: uint32(i % 7)}, {CPU: 1, NrRunning: 1}, {CPU: 1 << 20, NrRunning: 50}, {CPU: -3}}})
	}
	run := mustLoad(t, writeRun(t, b.Bytes(), nil))
	v := run.Variants[0]
	rq := v.RunQueue
	if rq == nil || rq.Samples != 5000 || len(rq.TimeS) > maxRQSamples || rq.Stride < 4 || rq.CPUsOmitted != 1 || len(rq.CPUs) != 2 {
		t.Fatalf("runqueue: samples %d kept %d stride %d omitted %d cpus %v", rq.Samples, len(rq.TimeS), rq.Stride, rq.CPUsOmitted, rq.CPUs)
	}
	if rq.Max == 99 || v.Metrics[MetricDSQ] == 99 {
		t.Error("the guest's forged sample was believed")
	}
	for i := 1; i < len(rq.TimeS); i++ {
		if rq.TimeS[i] <= rq.TimeS[i-1] {
			t.Fatalf("time goes back at %d", i)
		}
	}
	var h bytes.Buffer
	if err := WriteHTML(&h, run); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.String(), "every 8-th plotted") {
		t.Errorf("the plot does not say it was downsampled")
	}
}

func TestRenderers(t *testing.T) {
	run := mustLoad(t, runDir("mixed"))
	var txt bytes.Buffer
	if err := WriteText(&txt, run); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FAIL!       15.0s  scx_qmap/burst/tiny-1llc        meta.json says fail",
		"ERROR       -      scx_qmap/mixed/tiny-1llc        stream missing",
		"mismatch: scx_qmap/burst/tiny-1llc: meta.json says fail, the stream judges pass",
		"CASE                   eevdf  scx_lavd    scx_qmap\n",
		"burst/tiny-1llc        -      -           FAIL!\n",
		"steady/tiny-1llc       PASS   NO VERDICT  FAIL\n",
		"7 variants: 2 pass, 2 fail, 2 no verdict, 1 error",
	} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, txt.String())
		}
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, run); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Counts   Counts `json:"counts"`
		Variants []struct {
			Variant string             `json:"variant"`
			Status  Status             `json:"status"`
			Metrics map[string]float64 `json:"metrics"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Counts != run.Counts || len(back.Variants) != 7 || back.Variants[0].Metrics[MetricWakeP99] != 51 {
		t.Errorf("JSON round trip: %+v", back)
	}

	var ju bytes.Buffer
	if err := WriteJUnit(&ju, run); err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(ju.Bytes(), &suites); err != nil {
		t.Fatalf("JUnit is not XML: %v\n%s", err, ju.String())
	}
	s := suites.Suites[0]
	if suites.Tests != 7 || s.Failures != 2 || s.Errors != 3 || len(s.Cases) != 7 {
		t.Errorf("JUnit counts: tests %d failures %d errors %d", suites.Tests, s.Failures, s.Errors)
	}
	for _, c := range s.Cases {
		v := run.Variant(c.Name)
		switch {
		case v.Status == StatusFail && (c.Failure == nil || c.Failure.Message != v.Reason):
			t.Errorf("%s: failure %+v, want message %q", c.Name, c.Failure, v.Reason)
		case v.Status == StatusPass && (c.Failure != nil || c.Error != nil):
			t.Errorf("%s: a pass with a failure", c.Name)
		case (v.Status == StatusNoVerdict || v.Status == StatusError) && c.Error == nil:
			t.Errorf("%s: no error element", c.Name)
		}
		if out := ""; c.SystemOut != nil || v.Console != "" {
			if c.SystemOut != nil {
				out = c.SystemOut.Text
			}
			if out != v.Console {
				t.Errorf("%s: system-out %q, want %q", c.Name, out, v.Console)
			}
		}
	}
	// The console's escape and NUL are shown, never passed on.
	v := run.Variant("scx_qmap/steady/tiny-1llc")
	if strings.ContainsAny(v.Console, "\x1b\x00") || !strings.Contains(v.Console, "^[[31mred^[[0m <b>not bold</b> & ^@") {
		t.Errorf("console %q", v.Console)
	}
}

// TestRealGauntletRun loads testdata/runs/gauntlet-qemu, a run directory
// exactly as ktstr-gauntlet (branch gauntlet18) wrote it for a real
// two-variant suite (eevdf and scx_simple, scenario steady, 1n1l2c1t,
// QEMU TCG, kernel 6.12). ktstr-run saves the stream ahead of the
// monitor's frames, so it has no monitor samples; its worker metrics have
// no wake-latency fields.
func TestRealGauntletRun(t *testing.T) {
	run := mustLoad(t, runDir("gauntlet-qemu"))
	if !run.AllPass() || len(run.Variants) != 2 || run.Record == nil || run.Record.Engine != "make" {
		t.Fatalf("%s; record %+v", run.Summary(), run.Record)
	}
	v := run.Variant("scx_simple/steady/1n1l2c1t")
	if v.Verdict.Identity.Scheduler != "scx_simple" || v.Verdict.ChecksPassed != 6 || v.Mismatch != "" || len(v.Notes) != 0 {
		t.Errorf("verdict %+v, mismatch %q, notes %q", v.Verdict, v.Mismatch, v.Notes)
	}
	want := map[string]float64{MetricIterations: 90892, MetricMigrations: 10, MetricIterPerWorker: 45278,
		MetricSpread: 0.5, MetricWall: 8.18421089, MetricGap: 22.465181}
	for k, x := range want {
		if got, ok := v.Metrics[k]; !ok || math.Abs(got-x) > 1e-6 {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, x)
		}
	}
	for _, k := range []string{MetricWakeP99, MetricWakeP50, MetricDSQ, MetricImbalance} {
		if _, ok := v.Metrics[k]; ok {
			t.Errorf("%s present without its frames", k)
		}
	}
	if v.RunQueue != nil || len(v.Cgroups) != 1 || v.Cgroups[0].HasWake || v.Cgroups[0].Workers != 2 {
		t.Errorf("runqueue %v cgroups %+v", v.RunQueue, v.Cgroups)
	}
	if !strings.Contains(v.Console, "reboot: Power down") {
		t.Errorf("console tail %q", v.Console)
	}
}

// TestHostileNames: a variant directory whose name holds a newline, an
// escape and markup is reported on one text line, escaped in HTML and
// XML; it is no variant name ktstr-gauntlet writes, so its meta.json is not
// read (a note says why) while its stream is still judged.
func TestHostileNames(t *testing.T) {
	dir := t.TempDir()
	name := "s\n\x1b[2J<script>x/c/p"
	vdir := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Skipf("this file system refuses the name: %v", err)
	}
	os.WriteFile(filepath.Join(vdir, runrecord.StreamFile), buildStream(t, "s/c/p", streamSpec{}), 0o644)
	os.WriteFile(filepath.Join(vdir, runrecord.MetaFile), []byte(`{"variant":"s/c/p","verdict":"fail"}`), 0o644)
	run := mustLoad(t, dir)
	v := run.Variants[0]
	if v.Name != name || v.Meta != nil || v.Status != StatusPass || !strings.Contains(strings.Join(v.Notes, " "), "not a variant name") {
		t.Fatalf("variant %q status %s meta %v notes %q", v.Name, v.Status, v.Meta != nil, v.Notes)
	}
	var txt, h, ju bytes.Buffer
	WriteText(&txt, run)
	WriteHTML(&h, run)
	WriteJUnit(&ju, run)
	if strings.Contains(txt.String(), "\x1b") || strings.Count(txt.String(), "note: ") != 1 || strings.Count(txt.String(), "\n") != 8 {
		t.Errorf("text:\n%s", txt.String())
	}
	if strings.Contains(h.String(), "<script") || strings.Contains(ju.String(), "<script") || strings.Contains(h.String(), "\x1b") {
		t.Error("markup from a name reached the page or the XML unescaped")
	}
	var back junitSuites
	if err := xml.Unmarshal(ju.Bytes(), &back); err != nil {
		t.Fatalf("JUnit: %v", err)
	}
}

// TestHugeMeta: a meta.json over the size bound is refused, not read; the
// stream's verdict stands and a note says why.
func TestHugeMeta(t *testing.T) {
	dir := writeRun(t, buildStream(t, "s/c/p", streamSpec{}), nil)
	big := append([]byte(`{"variant":"s/c/p","verdict":"fail","reason":"`), bytes.Repeat([]byte("x"), runrecord.MaxMetaSize)...)
	os.WriteFile(filepath.Join(dir, "s", "c", "p", runrecord.MetaFile), append(big, `"}`...), 0o644)
	v := mustLoad(t, dir).Variants[0]
	if v.Meta != nil || v.Status != StatusPass || !strings.Contains(strings.Join(v.Notes, " "), "larger than") {
		t.Fatalf("status %s meta %v notes %q", v.Status, v.Meta != nil, v.Notes)
	}
}
