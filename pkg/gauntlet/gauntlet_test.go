package gauntlet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"github.com/ktstr-go/ktstr/pkg/pipeline"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// fixture writes a suite directory: two fake schedulers and a fake
// kernel (a file; its release is unreadable, so it is named by its file
// name).
func fixture(t *testing.T, suite string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"scx_a", "scx_b"} {
		os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/sh\n"), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "noexec"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(dir, "bzImage2"), []byte("kernel2"), 0o644)
	os.WriteFile(filepath.Join(dir, "my.json"), []byte(`{"name":"my","steps":[{"cgroups":[{"name":"a","workers":1,"work":{"type":"spin"}}],"hold_ms":500}]}`), 0o644)
	p := filepath.Join(dir, "suite.json")
	os.WriteFile(p, []byte(suite), 0o644)
	return p
}

const base = `{"schedulers":[{"name":"eevdf"},{"binary":"scx_a","args":["-v"]}],"scenarios":["steady"],"presets":["tiny-1llc"],"kernels":["bzImage"]`

func TestLoadSuiteErrors(t *testing.T) {
	for _, c := range []struct{ suite, err string }{
		{`{`, "unexpected EOF"},
		{"{\n\"schedulers\": [}", "line 2 column"},
		{`{"schedulers":"x"}`, "line 1 column"},
		{`{"schedulerz":[]}`, `unknown field "schedulerz"`},
		{`{"schedulers":[]}`, `"schedulers" is empty`},
		{`{"schedulers":[{"name":"x"}]}`, `no "binary"`},
		{`{"schedulers":[{"name":"eevdf","binary":"scx_a"}]}`, "takes no binary"},
		{`{"schedulers":[{"binary":"missing"}]}`, "no such file"},
		{`{"schedulers":[{"binary":"noexec"}]}`, "not an executable"},
		{`{"schedulers":[{"binary":"scx_a"},{"name":"scx_a","binary":"scx_b"}]}`, "appears twice"},
		{`{"schedulers":[{"name":"a/b","binary":"scx_a"}]}`, "not allowed"},
		{`{"schedulers":[{"name":"eevdf"}]}`, `"scenarios" is empty`},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["nope"]}`, "not in the catalog"},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["missing.json"]}`, "read scenario file"},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"]}`, `"presets" is empty`},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["huge"]}`, "no topology preset"},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["tiny-1llc","1n1l4c1t"],"kernels":["bzImage"]}`, ""},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["tiny-1llc","tiny-1llc"]}`, "appears twice"},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["3n4l1c1t"]}`, "no topology preset"},
		{base + `,"kernels":[]}`, "KTSTR_KERNEL is unset"},
		{base + `,"kernels":["nokernel"]}`, "no such file"},
		{base + `,"kernels":["bzImage",{"path":"bzImage"}]}`, "appears twice"},
		{base + `,"kernels":[{"path":"bzImage","nmae":"x"}]}`, `unknown field "nmae"`},
		{base + `,"repetitions":-1}`, "want 1 to 1000"},
		{base + `,"timeout":"soon"}`, "positive duration"},
		{base + `,"reserve":"llcs"}`, ""},
		{base + `,"reserve":"cpus"}`, ""},
		{base + `,"reserve":"llc"}`, `"reserve" "llc": want llcs (whole LLCs, the default) or cpus`},
		{base + `,"vmm":"xen"}`, "want auto, kvm or qemu"},
		{base + `,"boot_s":-1}`, "boot_s"},
		{base + `,"append":"a\nb"}`, "one line"},
		{base + `} x`, "trailing data"},
		{`{"schedulers":[{"name":"eevdf"}],"scenarios":["steady","mixed-burst","cpuset-shrink","ping-pong-cross-llc","two-cgroups-disjoint"],
			"presets":["tiny-1llc","tiny-2llc","odd-3llc","odd-5llc","odd-7llc","smt-2llc","smt-3llc","medium-4llc","medium-8llc",
			"large-4llc","large-8llc","near-max-llc","max-cpu","medium-4llc-nosmt","medium-8llc-nosmt","large-4llc-nosmt",
			"large-8llc-nosmt","near-max-llc-nosmt","max-cpu-nosmt","numa2-4llc","numa2-8llc","numa2-8llc-nosmt","numa4-8llc",
			"numa4-12llc"],"kernels":["bzImage"],"repetitions":1000}`, "120000 variants, more than 100000"},
		{base + `}`, ""},
	} {
		_, err := LoadSuite(fixture(t, c.suite), "")
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.suite, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err %v, want %q", c.suite, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", c.suite, err)
		}
	}
}

func FuzzParseSuite(f *testing.F) {
	f.Add([]byte(base + `}`))
	f.Add([]byte(`{"kernels":[{"path":"x"},"y"],"repetitions":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSuite(b)
	})
}

func TestExpand(t *testing.T) {
	p := fixture(t, `{"schedulers":[{"name":"eevdf"},{"binary":"scx_a","args":["-v"]}],"scenarios":["steady","my.json"],
		"presets":["tiny-1llc","2n2l1c1t"],"kernels":["bzImage",{"name":"next","path":"bzImage2"}],"repetitions":2,"memory":"2G"}`)
	l, err := LoadSuite(p, "")
	if err != nil {
		t.Fatal(err)
	}
	vs := l.Expand()
	if len(vs) != 2*2*2*2*2 {
		t.Fatalf("%d variants", len(vs))
	}
	first, last := vs[0], vs[len(vs)-1]
	if first.Name != "eevdf/steady/tiny-1llc/bzImage/rep1" || last.Name != "scx_a/my/2n2l1c1t/next/rep2" {
		t.Errorf("names %s .. %s", first.Name, last.Name)
	}
	if last.Binary != filepath.Join(filepath.Dir(p), "scx_a") || last.ScenarioArg != filepath.Join(filepath.Dir(p), "my.json") ||
		last.Kernel != filepath.Join(filepath.Dir(p), "bzImage2") || strings.Join(last.SchedulerArgs, " ") != "-v" {
		t.Errorf("paths not resolved: %+v", last)
	}
	if first.Memory != "2G" || first.Topology != "1n1l4c1t" || first.VCPUs != 4 || first.Timeout != "4m0s" || first.VMM != "auto" || first.Reserve != "llcs" {
		t.Errorf("first %+v", first)
	}
	for _, v := range vs {
		if _, err := runrecord.ParseVariant(v.Name); err != nil {
			t.Error(err)
		}
	}
	// One kernel, one repetition: neither part in the name; memory by size.
	l, _ = LoadSuite(fixture(t, `{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["medium-4llc"],"kernels":["bzImage"]}`), "")
	vs = l.Expand()
	if len(vs) != 1 || vs[0].Name != "eevdf/steady/medium-4llc" || vs[0].Memory != "2G" || vs[0].EstimateS != 10+1+3+2 {
		t.Errorf("%+v", vs)
	}
	// "reserve": "cpus" reaches every variant.
	l, _ = LoadSuite(fixture(t, `{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["tiny-1llc"],"kernels":["bzImage"],"reserve":"cpus"}`), "")
	if vs = l.Expand(); vs[0].Reserve != "cpus" {
		t.Errorf("reserve cpus: %+v", vs[0])
	}
	// The kernel from $KTSTR_KERNEL.
	l, err = LoadSuite(fixture(t, `{"schedulers":[{"name":"eevdf"}],"scenarios":["steady"],"presets":["tiny-1llc"]}`), "/bin/true")
	if err != nil || l.Kernels[0].Path != "/bin/true" || l.Kernels[0].Name != "true" {
		t.Errorf("%+v %v", l, err)
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		glob, name string
		want       bool
	}{
		{"scx_a", "scx_a/steady/tiny-1llc", true},
		{"scx_*", "scx_a/steady/tiny-1llc", true},
		{"*/steady", "scx_a/steady/tiny-1llc", true},
		{"*/steady", "scx_a/steadier/tiny-1llc", false},
		{"*/*/tiny-*", "eevdf/x/tiny-2llc", true},
		{"*/*/tiny-*/k/rep1", "eevdf/x/tiny-2llc", false},
		{"eevdf/steady/tiny-1llc", "eevdf/steady/tiny-1llc/rep2", true},
		{"eevdf", "eevdfx/steady/tiny-1llc", false},
	} {
		if got, err := Match(c.glob, c.name); got != c.want || err != nil {
			t.Errorf("Match(%q, %q) = %v %v", c.glob, c.name, got, err)
		}
	}
	if _, err := Match("[", "a/b/c"); err == nil {
		t.Error("bad pattern accepted")
	}
	vs := []Variant{{Name: "eevdf/s/p"}, {Name: "scx_a/s/p"}, {Name: "scx_a/t/p"}}
	for _, c := range []struct {
		only, excl []string
		want       string
	}{
		{nil, nil, "eevdf/s/p scx_a/s/p scx_a/t/p"},
		{[]string{"scx_a"}, nil, "scx_a/s/p scx_a/t/p"},
		{[]string{"scx_a", "eevdf"}, []string{"*/t"}, "eevdf/s/p scx_a/s/p"},
		{nil, []string{"*"}, ""},
	} {
		got, err := Filter(vs, c.only, c.excl)
		if err != nil || strings.Join(Names(got), " ") != c.want {
			t.Errorf("Filter(%v, %v) = %v %v", c.only, c.excl, Names(got), err)
		}
	}
	if _, err := Filter(vs, []string{"[x"}, nil); err == nil {
		t.Error("bad --only pattern accepted")
	}
}

// TestBudget: the selection covers every feature it can within the
// budget, prefers cheap variants for the same coverage, never exceeds
// the budget, and stops when nothing adds coverage.
func TestBudget(t *testing.T) {
	l, err := LoadSuite(fixture(t, `{"schedulers":[{"name":"eevdf"},{"binary":"scx_a"},{"binary":"scx_b"}],
		"scenarios":["steady","my.json"],"presets":["tiny-1llc","smt-2llc","large-8llc","numa2-4llc"],"kernels":["bzImage"],"repetitions":3}`), "")
	if err != nil {
		t.Fatal(err)
	}
	all := l.Expand()
	features := map[string]bool{}
	for _, v := range all {
		for _, f := range v.features {
			features[f] = true
		}
	}
	for _, budget := range []float64{0, 5, 20, 60, 120, 1e6} {
		got := Budget(all, budget)
		sum := 0.0
		covered := map[string]bool{}
		for _, v := range got {
			sum += v.EstimateS
			for _, f := range v.features {
				covered[f] = true
			}
			if v.Rep != 1 {
				t.Errorf("budget %v: picked %s: a repetition adds no coverage", budget, v.Name)
			}
		}
		if sum > budget {
			t.Errorf("budget %v: %v s picked", budget, sum)
		}
		if budget == 1e6 && len(covered) != len(features) {
			t.Errorf("unlimited budget covers %d of %d features", len(covered), len(features))
		}
		t.Logf("budget %v: %d variants, %v s, %d/%d features: %v", budget, len(got), sum, len(covered), len(features), Names(got))
	}
	// Deterministic.
	a, b := Names(Budget(all, 60)), Names(Budget(all, 60))
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Error("not deterministic")
	}
}

func TestMakefile(t *testing.T) {
	mk := Makefile("/opt/k t/ktstr-gauntlet", []string{"eevdf/steady/tiny-1llc", "scx_a/steady/tiny-1llc/rep2"})
	for _, want := range []string{
		"GAUNTLET ?= '/opt/k t/ktstr-gauntlet'\n",
		"\teevdf/steady/tiny-1llc/meta.json \\\n\tscx_a/steady/tiny-1llc/rep2/meta.json\n",
		"\t@$(GAUNTLET) run-variant \"$(CURDIR)\" $(@D)\n",
		"all: variants\n\t@$(GAUNTLET) finish \"$(CURDIR)\"\n",
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("Makefile lacks %q:\n%s", want, mk)
		}
	}
	if !strings.Contains(Makefile("/a$b", nil), "GAUNTLET ?= '/a$$b'") {
		t.Error("$ not escaped for make")
	}
	// make itself reads it: a dry run names each variant once, and one
	// whose meta.json exists is up to date.
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644)
	os.MkdirAll(filepath.Join(dir, "eevdf/steady/tiny-1llc"), 0o755)
	os.WriteFile(filepath.Join(dir, "eevdf/steady/tiny-1llc/meta.json"), nil, 0o644)
	out, err := exec.Command("make", "-n", "-C", dir, "--no-print-directory", "variants").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v: %s", err, out)
	}
	if got := string(out); strings.Contains(got, "eevdf/steady") || !strings.Contains(got, "run-variant \""+dir+"\" scx_a/steady/tiny-1llc/rep2") {
		t.Errorf("make -n:\n%s", got)
	}
}

func TestSlurmScript(t *testing.T) {
	s := SlurmScript("/bin/g", "/r", 18, SlurmOptions{Jobs: 2, CPUsPerTask: 4})
	for _, want := range []string{"#SBATCH --array=0-17%2\n", "#SBATCH --cpus-per-task=4\n", "#SBATCH --output=/r/slurm/%A_%a.out\n",
		`exec /bin/g run-variant "$rundir" "$variant"`} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
}

func TestRunDir(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 1, 2, 0, time.UTC)
	if got := DefaultRunDir("", []Kernel{{Name: "6.12.117"}}, "abc1234-dirty", now); got != "runs/6.12.117-abc1234-dirty/20261206T090102Z" {
		t.Error(got)
	}
	if got := DefaultRunDir("r", []Kernel{{Name: "a"}, {Name: "b"}}, "v1 x", now); got != "r/multi-v1_x/20261206T090102Z" {
		t.Error(got)
	}
	dir := t.TempDir()
	if err := prepareRunDir(filepath.Join(dir, "new")); err != nil {
		t.Error(err)
	}
	if err := prepareRunDir(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty run directory: %v", err)
	}
	for _, bad := range []string{"/a b", "/a$x", "/a%j", "/it's"} {
		if checkRunDirName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if checkRunDirName("/tmp/runs/6.12.117-abc/20261206T090102Z") != nil {
		t.Error("plain path refused")
	}
}

func TestDefaultJobs(t *testing.T) {
	vs := []Variant{{VCPUs: 4}, {VCPUs: 2}}
	for _, c := range []struct{ host, want int }{{2, 1}, {8, 2}, {9, 2}, {1, 1}} {
		if got := DefaultJobs(vs, c.host); got != c.want {
			t.Errorf("host %d: %d, want %d", c.host, got, c.want)
		}
	}
}

// TestKtstrRunArgs: a variant's reservation mode reaches its ktstr-run
// (before the scheduler's arguments); a plan written before variants had
// one leaves ktstr-run's default.
func TestKtstrRunArgs(t *testing.T) {
	v := Variant{Kernel: "/k", Binary: "/s", SchedulerArgs: []string{"-v"}, ScenarioArg: "steady", Topology: "1n1l4c1t",
		Memory: "1G", Timeout: "4m0s", VMM: "auto", Reserve: "llcs"}
	want := "--kernel /k --scheduler /s --scenario steady --topology 1n1l4c1t --memory 1G --timeout 4m0s --vmm auto --save /r/s --json --reserve llcs -- -v"
	if got := strings.Join(ktstrRunArgs(&v, "/r/s"), " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	v.Reserve = ""
	if got := strings.Join(ktstrRunArgs(&v, "/r/s"), " "); strings.Contains(got, "--reserve") {
		t.Errorf("no reserve: %s", got)
	}
}

// TestDefaultJobsLLCs: whole-LLC variants side by side on fake hosts: the
// host's LLCs over the most one variant takes; a variant too big for the
// host takes none and is listed. hostJobs takes the smaller bound when a
// plan mixes both modes.
func TestDefaultJobsLLCs(t *testing.T) {
	fake := func(s fakesys.Spec) string {
		root := t.TempDir()
		if _, err := fakesys.Write(root, s); err != nil {
			t.Fatal(err)
		}
		return root
	}
	eight := fake(fakesys.Spec{Nodes: 2, LLCs: 4, Cores: 2, Threads: 1}) // 8 LLCs of 2 CPUs
	one := fake(fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1})
	llcs := func(vcpus ...int) []Variant {
		var vs []Variant
		for i, n := range vcpus {
			vs = append(vs, Variant{Name: fmt.Sprintf("v%d", i), VCPUs: n, Reserve: pipeline.ReserveLLCs})
		}
		return vs
	}
	for _, c := range []struct {
		name   string
		root   string
		vs     []Variant
		want   int
		tooBig string
	}{
		{"2 vCPUs on 8 LLCs of 2", eight, llcs(2, 1), 8, ""},
		{"4 vCPUs on 8 LLCs of 2", eight, llcs(2, 4), 4, ""},
		{"5 vCPUs on 8 LLCs of 2", eight, llcs(5), 2, ""},
		{"16 vCPUs", eight, llcs(16, 2), 1, ""},
		{"too big", eight, llcs(17, 2), 8, "v0"},
		{"1 LLC", one, llcs(2, 2), 1, ""},
		{"1 LLC, too big", one, llcs(4, 2), 1, "v0"},
	} {
		top, err := hosttopo.Read(c.root)
		if err != nil {
			t.Fatal(err)
		}
		got, tooBig := DefaultJobsLLCs(c.vs, top)
		if got != c.want || strings.Join(tooBig, ",") != c.tooBig {
			t.Errorf("%s: %d %v, want %d %q", c.name, got, tooBig, c.want, c.tooBig)
		}
		if j, fit, tb := hostJobs(c.vs, c.root); j != c.want || !strings.Contains(fit, "LLC") || strings.Join(tb, ",") != c.tooBig {
			t.Errorf("%s: hostJobs = %d %q %v", c.name, j, fit, tb)
		}
	}
	// Mixed: CPU variants bound by this process's CPUs, LLC ones by LLCs.
	mixed := append(llcs(2), Variant{Name: "c", VCPUs: 1, Reserve: pipeline.ReserveCPUs})
	if j, _, _ := hostJobs(mixed, eight); j != min(8, HostCPUs()) {
		t.Errorf("mixed: %d, want %d", j, min(8, HostCPUs()))
	}
	// An unreadable topology: one at a time, said so.
	if j, fit, _ := hostJobs(llcs(1), t.TempDir()); j != 1 || !strings.Contains(fit, "LLCs are unknown") {
		t.Errorf("no sysfs: %d %q", j, fit)
	}
}

func TestReasonOf(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "console")
	os.WriteFile(console, []byte("boot\nviolation imbalance global at 10.8s: ratio 4.7\nviolation later\nktstr-monitor: 3 violation(s)\nktstr-run: FAIL: ktstr-monitor exited 1 (violation)\n"), 0o644)
	pass := []byte(`{"verdict":{"result":"pass","reason":"21 check(s) passed"}}`)
	fail := []byte(`{"verdict":{"result":"fail","reason":"check task_stall failed"}}`)
	for _, c := range []struct {
		verdict []byte
		console string
		code    int
		want    string
	}{
		{fail, console, 1, "check task_stall failed"},
		{pass, console, 1, "FAIL: ktstr-monitor exited 1 (violation); first violation: imbalance global at 10.8s: ratio 4.7"},
		{pass, console, 0, "21 check(s) passed"},
		{nil, "/nonexistent", 0, "PASS"},
		{nil, "/nonexistent", 4, "ktstr-run exited 4"},
		{nil, "/nonexistent", -1, "ktstr-run was killed by a signal"},
		{[]byte("{garbage"), console, 1, "FAIL: ktstr-monitor exited 1 (violation); first violation: imbalance global at 10.8s: ratio 4.7"},
	} {
		if got := reasonOf(c.verdict, c.console, c.code); got != c.want {
			t.Errorf("reasonOf(%s, %d) = %q, want %q", c.verdict, c.code, got, c.want)
		}
	}
	if got := oneLine("a\nb\r\n" + strings.Repeat("x", 600)); strings.ContainsAny(got, "\r\n") || len(got) > 500 {
		t.Errorf("oneLine: %q", got)
	}
}

// TestRunVariant: one variant through a fake ktstr-run: the record's
// files are renamed into place and meta.json says what ran; a second
// call does not run it again; an invalid meta.json is not replaced.
func TestRunVariant(t *testing.T) {
	dir := t.TempDir()
	krun := filepath.Join(dir, "ktstr-run")
	os.WriteFile(krun, []byte(`#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --save ] && printf S >"$2"; shift; done
echo ran >>"$(dirname "$0")/count"
echo "console" >&2
echo '{"verdict":{"result":"pass","reason":"ok"}}'
`), 0o755)
	p := fixture(t, base+`}`)
	l, err := LoadSuite(p, "")
	if err != nil {
		t.Fatal(err)
	}
	rundir := filepath.Join(dir, "run")
	os.Mkdir(rundir, 0o755)
	vs := l.Expand()
	if err := writePlan(rundir, &Plan{Gauntlet: "/bin/false", KtstrRun: krun, Variants: vs}, SlurmOptions{}); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	o := VariantOptions{Version: "v", Stderr: &stderr}
	m, err := RunVariant(t.Context(), rundir, vs[1].Name, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Verdict != runrecord.Pass || m.Reason != "ok" || m.SchedulerSHA256 == "" || strings.Join(m.SchedulerArgs, " ") != "-v" || m.KernelVersion != "" {
		t.Errorf("meta %+v", m)
	}
	vdir := runrecord.VariantDir(rundir, vs[1].Name)
	for f, want := range map[string]string{runrecord.StreamFile: "S", runrecord.VerdictFile: `{"verdict":{"result":"pass","reason":"ok"}}` + "\n"} {
		if b, _ := os.ReadFile(filepath.Join(vdir, f)); string(b) != want {
			t.Errorf("%s: %q", f, b)
		}
	}
	if _, err := RunVariant(t.Context(), rundir, vs[1].Name, o); err != nil {
		t.Error(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "count")); string(b) != "ran\n" {
		t.Errorf("ran %q times", b)
	}
	os.WriteFile(filepath.Join(vdir, runrecord.MetaFile), []byte("{"), 0o644)
	if _, err := RunVariant(t.Context(), rundir, vs[1].Name, o); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("invalid meta.json: %v", err)
	}
	if _, err := RunVariant(t.Context(), rundir, "no/such/variant", o); err == nil {
		t.Error("unknown variant ran")
	}
	if _, err := RunVariant(t.Context(), rundir, "../../etc", o); err == nil {
		t.Error("bad variant name accepted")
	}
}
