package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium returns Debian's chromium (CI installs it: .ci/run) or skips
// loudly.
func chromium(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skip("SKIP LOUDLY: chromium not installed (apt-get install chromium): the HTML report was not checked in a browser")
	return ""
}

// headless runs chromium on a file:// URL with args (--dump-dom or
// --screenshot=...) in a private profile and returns its standard output.
func headless(t *testing.T, bin, page string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	prof := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + prof, "--window-size=1100,1600"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, "file://"+page)...)
	cmd.Env = append(os.Environ(), "HOME="+prof)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

var (
	cellRE     = regexp.MustCompile(`<td class="cell ([a-z_]+)" data-variant="([^"]*)" data-status="([a-z_]+)"`)
	polylineRE = regexp.MustCompile(`<polyline class="rq-line" data-cpu="(\d+)"[^>]* points="([^"]*)"`)
	sectionRE  = regexp.MustCompile(`<section class="variant" id="(v\d+)" data-variant="([^"]*)" data-status="([a-z_]+)"`)
	externalRE = regexp.MustCompile(`(?i)(src|href|xlink:href|action|data)\s*=\s*["']?\s*(https?:|//|ftp:)`)
)

// TestHTMLInBrowser renders the fixture runs as HTML, loads each page in
// headless chromium, and checks the DOM the browser built: one grid cell per
// variant with its status as class, one section per variant, runqueue
// plots with points, CPU-share and wake-latency bars where the stream had
// them; a screenshot that is a real picture; and no external reference.
func TestHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	for _, name := range []string{"mixed", "pass", "gauntlet-qemu"} {
		t.Run(name, func(t *testing.T) {
			run := mustLoad(t, runDir(name))
			var src bytes.Buffer
			if err := WriteHTML(&src, run); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"http://", "https://", "<script", "<link", "<iframe", "<img", "@import", "url("} {
				if bytes.Contains(src.Bytes(), []byte(bad)) {
					t.Errorf("the page contains %q: it must be self-contained", bad)
				}
			}
			page := filepath.Join(t.TempDir(), "report.html")
			if err := os.WriteFile(page, src.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			dom := string(headless(t, bin, page, "--dump-dom"))
			if !strings.Contains(dom, "</html>") {
				t.Fatalf("no DOM dumped:\n%.2000s", dom)
			}
			if m := externalRE.FindString(dom); m != "" {
				t.Errorf("the DOM references something outside the page: %q", m)
			}

			// The grid: exactly one cell per variant, classed by status.
			cells := map[string]string{}
			for _, m := range cellRE.FindAllStringSubmatch(dom, -1) {
				if m[1] != m[3] {
					t.Errorf("cell %s: class %s, data-status %s", m[2], m[1], m[3])
				}
				if _, dup := cells[m[2]]; dup {
					t.Errorf("two cells for %s", m[2])
				}
				cells[m[2]] = m[1]
			}
			if len(cells) != len(run.Variants) {
				t.Errorf("%d grid cells, want %d", len(cells), len(run.Variants))
			}
			for _, v := range run.Variants {
				if cells[v.Name] != string(v.Status) {
					t.Errorf("cell %s: class %q, want %q", v.Name, cells[v.Name], v.Status)
				}
			}

			// One section per variant; split the DOM at them to check each
			// variant's plots.
			locs := sectionRE.FindAllStringSubmatchIndex(dom, -1)
			if len(locs) != len(run.Variants) {
				t.Fatalf("%d variant sections, want %d", len(locs), len(run.Variants))
			}
			for i, loc := range locs {
				end := len(dom)
				if i+1 < len(locs) {
					end = locs[i+1][0]
				}
				sec := dom[loc[0]:end]
				v := run.Variant(dom[loc[4]:loc[5]])
				if v == nil {
					t.Fatalf("section for unknown variant %q", dom[loc[4]:loc[5]])
				}
				checkSection(t, v, sec)
			}
			if name == "mixed" { // one screenshot is enough: each start of chromium costs seconds
				png := filepath.Join(t.TempDir(), "report.png")
				headless(t, bin, page, "--screenshot="+png, "--hide-scrollbars")
				checkScreenshot(t, png)
			}
		})
	}
}

func checkSection(t *testing.T, v *Variant, sec string) {
	t.Helper()
	lines := polylineRE.FindAllStringSubmatch(sec, -1)
	if v.RunQueue == nil {
		if len(lines) != 0 || !strings.Contains(sec, "no monitor samples") {
			t.Errorf("%s: no samples, yet %d runqueue lines", v.Name, len(lines))
		}
	} else {
		cpus := map[string]bool{}
		for _, l := range lines {
			cpus[l[1]] = true
			pts := strings.Fields(l[2])
			if len(pts) < 2 {
				t.Errorf("%s: cpu %s line has %d points", v.Name, l[1], len(pts))
			}
			for _, p := range pts {
				xy := strings.Split(p, ",")
				if len(xy) != 2 {
					t.Fatalf("%s: bad point %q", v.Name, p)
				}
				for _, c := range xy {
					f, err := strconv.ParseFloat(c, 64)
					if err != nil || f < 0 || f > plotW {
						t.Errorf("%s: point %q outside the plot", v.Name, p)
					}
				}
			}
		}
		if len(cpus) != len(v.RunQueue.CPUs) {
			t.Errorf("%s: lines for %d CPUs, want %d", v.Name, len(cpus), len(v.RunQueue.CPUs))
		}
	}
	shareBars := strings.Count(sec, `<rect class="bar share-bar"`)
	if shareBars != len(v.Cgroups) {
		t.Errorf("%s: %d CPU-share bars, want %d", v.Name, shareBars, len(v.Cgroups))
	}
	wake := 0
	for _, c := range v.Cgroups {
		if c.HasWake {
			wake++
		}
	}
	if n := strings.Count(sec, `<rect class="bar wake-p99"`); n != wake {
		t.Errorf("%s: %d wake p99 bars, want %d", v.Name, n, wake)
	}
	if wake == 0 && !strings.Contains(sec, "no wake-latency fields in this stream") {
		t.Errorf("%s: no wake latency and no note saying so", v.Name)
	}
	if v.Mismatch != "" && !strings.Contains(sec, `<p class="mismatch">`) {
		t.Errorf("%s: mismatch not shown", v.Name)
	}
	checkBPFAndRepro(t, v, sec)
}

var (
	bpfRowRE   = regexp.MustCompile(`<tr class="bpf-prog"><td>([^<]*)</td><td>([^<]*)</td><td>(\d+)</td>`)
	tlRowRE    = regexp.MustCompile(`<tr class="(trigger|lastseen|event)"><td>(-?[0-9.]+)</td><td>(\d+)</td><td>[^<]*</td><td>([^<]*)</td>`)
	tlTableRE  = regexp.MustCompile(`<table class="timeline" data-total="(\d+)">`)
	bpfTotalRE = regexp.MustCompile(`<table class="bpf" data-total-insns="(\d+)">`)
	// domText escapes text as chromium's --dump-dom serializes it.
	domText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\u00a0", "&nbsp;")
)

// checkBPFAndRepro: the BPF table has one row per program of the
// variant's bpf_prog_stats frame, with its verified instructions and the
// total; the auto-repro timeline has one row per event of the window, in
// order, the trigger's row marked, and the per-task chains; a variant
// without them has neither.
func checkBPFAndRepro(t *testing.T, v *Variant, sec string) {
	t.Helper()
	rows := bpfRowRE.FindAllStringSubmatch(sec, -1)
	if v.BPF == nil {
		if len(rows) != 0 || strings.Contains(sec, `class="bpf"`) {
			t.Errorf("%s: a BPF table without a bpf_prog_stats frame", v.Name)
		}
	} else {
		if len(rows) != len(v.BPF.Programs) {
			t.Errorf("%s: %d BPF rows, want %d", v.Name, len(rows), len(v.BPF.Programs))
		}
		for i, r := range rows {
			if p := v.BPF.Programs[i]; r[1] != p.Name || r[2] != p.Type || r[3] != strconv.FormatUint(uint64(p.VerifiedInsns), 10) {
				t.Errorf("%s: BPF row %d %q, want %+v", v.Name, i, r[1:], p)
			}
		}
		if m := bpfTotalRE.FindStringSubmatch(sec); m == nil || m[1] != strconv.FormatUint(v.BPF.TotalVerifiedInsns, 10) {
			t.Errorf("%s: BPF total %v, want %d", v.Name, m, v.BPF.TotalVerifiedInsns)
		}
	}
	ev := tlRowRE.FindAllStringSubmatch(sec, -1)
	if v.Repro == nil || v.Repro.Timeline == nil {
		if len(ev) != 0 || strings.Contains(sec, "Auto-repro timeline") {
			t.Errorf("%s: a timeline without an auto-repro stream", v.Name)
		}
		return
	}
	tl := v.Repro.Timeline
	if !strings.Contains(sec, "<h3>Auto-repro timeline</h3>") {
		t.Errorf("%s: no timeline heading", v.Name)
	}
	if m := tlTableRE.FindStringSubmatch(sec); m == nil || m[1] != strconv.Itoa(tl.Total) {
		t.Errorf("%s: timeline table %v, want %d events in all", v.Name, m, tl.Total)
	}
	if len(ev) != len(tl.Events) {
		t.Fatalf("%s: %d timeline rows, want %d", v.Name, len(ev), len(tl.Events))
	}
	triggers := 0
	for i, r := range ev {
		e := tl.Events[i]
		if r[2] != e.RelMS || r[3] != strconv.Itoa(e.CPU) || r[4] != e.Func || (r[1] == "trigger") != e.Trigger {
			t.Errorf("%s: timeline row %d %q, want %+v", v.Name, i, r[1:], e)
		}
		if r[1] == "trigger" {
			triggers++
			if r[2] != "0.000" {
				t.Errorf("%s: the trigger is at %s ms, not 0", v.Name, r[2])
			}
		}
	}
	if tl.Trigger != "" && triggers != 1 {
		t.Errorf("%s: %d trigger rows", v.Name, triggers)
	}
	if n := strings.Count(sec, `<li data-pid=`); n != len(tl.Tasks) {
		t.Errorf("%s: %d task chains, want %d", v.Name, n, len(tl.Tasks))
	}
	for _, s := range tl.Summary {
		if !strings.Contains(sec, "<li>"+domText.Replace(s)+"</li>") {
			t.Errorf("%s: summary line %q not in the DOM", v.Name, s)
		}
	}
}

// checkScreenshot checks the PNG chromium wrote is a picture with the
// page's colours in it (the grid's pass green at least), not a blank.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 500 || b.Dy() < 500 {
		t.Fatalf("screenshot is %v", b)
	}
	colors := map[[3]uint32]int{}
	passGreen := false
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
			if r>>8 == 0xc8 && g>>8 == 0xef && bl>>8 == 0xc8 {
				passGreen = true
			}
		}
	}
	if len(colors) < 20 || !passGreen {
		t.Errorf("screenshot %v has %d colours, pass green %v: not the page", b, len(colors), passGreen)
	}
}
