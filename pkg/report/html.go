package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH             = 640.0, 200.0
	padL, padR, padT, padB   = 44.0, 12.0, 10.0, 24.0
	barPlotRow, barPlotLabel = 22.0, 150.0
)

// WriteHTML writes one self-contained HTML page: inline CSS, inline SVG
// drawn here, no script and no external reference. Every string from the
// run directory goes through html/template's contextual escaping.
func WriteHTML(w io.Writer, run *Run) error {
	return pageTemplate.Execute(w, buildPage(run))
}

type page struct {
	Title      string
	Run        *Run
	Summary    string
	Schedulers []string
	Rows       []gridRow
	Variants   []variantView
	Defs       []MetricDef
}

type gridRow struct {
	Case  string
	Cells []gridCell
}

type gridCell struct {
	Empty   bool
	Variant string
	Status  string
	Word    string
	Reason  string
	Anchor  string
	Flag    bool // mismatch
}

type metricRow struct {
	Name, Value, Unit string
}

type variantView struct {
	*Variant
	Anchor  string
	Word    string
	Metrics []metricRow
	RQ      *linePlot
	Share   *barPlot
	Wake    *barPlot
}

type axisTick struct {
	X, Y  string
	Label string
}

type line struct {
	CPU    int
	Color  template.CSS // made here (cpuColor), never from the run directory
	Points string
}

type linePlot struct {
	W, H           string
	X0, X1, Y0, Y1 string
	XTicks         []axisTick
	YTicks         []axisTick
	Lines          []line
	Note           string
	Legend         []line
}

type bar struct {
	Label        string
	Class        string
	X, Y, W, H   string
	TextX, TextY string
	Value        string
	Whisker      bool
	WX1, WX2, WY string
}

type barPlot struct {
	W, H  string
	Axis  string // x of the value axis
	Bars  []bar
	Scale string
}

func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

func buildPage(run *Run) *page {
	p := &page{Run: run, Summary: run.Summary(), Title: "ktstr report"}
	if run.Record != nil && run.Record.Suite != "" {
		p.Title += ": " + run.Record.Suite
	}
	p.Defs = Metrics()
	// The grid: a row per case (scenario/preset[...]), a column per
	// scheduler, as in the text report: suites have few schedulers and
	// many cases, so the page grows down, not sideways.
	cols := map[string]int{}
	rows := map[string]int{}
	for _, v := range run.Variants {
		if _, ok := cols[v.Scheduler]; !ok {
			cols[v.Scheduler] = 0
			p.Schedulers = append(p.Schedulers, v.Scheduler)
		}
		if _, ok := rows[v.Case]; !ok {
			rows[v.Case] = 0
			p.Rows = append(p.Rows, gridRow{Case: v.Case})
		}
	}
	sort.Strings(p.Schedulers)
	sort.Slice(p.Rows, func(i, j int) bool { return p.Rows[i].Case < p.Rows[j].Case })
	for i, c := range p.Schedulers {
		cols[c] = i
	}
	for i := range p.Rows {
		rows[p.Rows[i].Case] = i
		p.Rows[i].Cells = make([]gridCell, len(p.Schedulers))
		for j := range p.Rows[i].Cells {
			p.Rows[i].Cells[j].Empty = true
		}
	}
	for i, v := range run.Variants {
		anchor := "v" + strconv.Itoa(i)
		p.Rows[rows[v.Case]].Cells[cols[v.Scheduler]] = gridCell{Variant: v.Name, Status: string(v.Status),
			Word: v.Status.Word(), Reason: v.Reason, Anchor: anchor, Flag: v.Mismatch != ""}
		vv := variantView{Variant: v, Anchor: anchor, Word: v.Status.Word()}
		for _, d := range p.Defs {
			if x, ok := v.Metrics[d.Name]; ok {
				vv.Metrics = append(vv.Metrics, metricRow{d.Name, strconv.FormatFloat(x, 'g', 6, 64), d.Unit})
			}
		}
		vv.RQ = rqPlot(v.RunQueue)
		vv.Share, vv.Wake = cgroupPlots(v.Cgroups)
		p.Variants = append(p.Variants, vv)
	}
	return p
}

// cpuColor gives CPU i of n a distinct hue.
func cpuColor(i int) template.CSS {
	return template.CSS(fmt.Sprintf("hsl(%d,70%%,40%%)", (i*137)%360))
}

// niceMax rounds a plot's top value up to 1, 2 or 5 times a power of ten.
func niceMax(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if x <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func rqPlot(rq *RunQueue) *linePlot {
	if rq == nil || len(rq.TimeS) == 0 || len(rq.CPUs) == 0 {
		return nil
	}
	t0, t1 := rq.TimeS[0], rq.TimeS[0]
	for _, t := range rq.TimeS {
		t0, t1 = min(t0, t), max(t1, t)
	}
	if t1 <= t0 {
		t1 = t0 + 1
	}
	ymax := niceMax(rq.Max)
	x := func(t float64) float64 { return padL + (t-t0)/(t1-t0)*(plotW-padL-padR) }
	y := func(d float64) float64 { return plotH - padB - d/ymax*(plotH-padT-padB) }
	lp := &linePlot{W: f1(plotW), H: f1(plotH), X0: f1(padL), X1: f1(plotW - padR), Y0: f1(plotH - padB), Y1: f1(padT)}
	for i := 0; i <= 4; i++ {
		d := ymax * float64(i) / 4
		lp.YTicks = append(lp.YTicks, axisTick{X: f1(padL - 4), Y: f1(y(d) + 4), Label: strconv.FormatFloat(d, 'g', 3, 64)})
		t := t0 + (t1-t0)*float64(i)/4
		lp.XTicks = append(lp.XTicks, axisTick{X: f1(x(t)), Y: f1(plotH - 6), Label: strconv.FormatFloat(t, 'f', 1, 64) + "s"})
	}
	for ci, cpu := range rq.CPUs {
		var seg []string
		flush := func() {
			if len(seg) > 0 {
				lp.Lines = append(lp.Lines, line{CPU: cpu, Color: cpuColor(ci), Points: strings.Join(seg, " ")})
			}
			seg = seg[:0]
		}
		for si, d := range rq.Depth[ci] {
			if d < 0 {
				flush()
				continue
			}
			seg = append(seg, f1(x(rq.TimeS[si]))+","+f1(y(d)))
		}
		flush()
		lp.Legend = append(lp.Legend, line{CPU: cpu, Color: cpuColor(ci)})
	}
	lp.Note = fmt.Sprintf("%d monitor samples", rq.Samples)
	if rq.Stride > 1 {
		lp.Note += fmt.Sprintf(", every %d-th plotted", rq.Stride)
	}
	if rq.CPUsOmitted > 0 {
		lp.Note += fmt.Sprintf("; %d CPUs with ids of %d and above not plotted", rq.CPUsOmitted, maxPlotCPUs)
	}
	return lp
}

// cgroupPlots draws, per cgroup, its workers' CPU share (a bar for the
// cgroup's share, a whisker from the lowest to the highest worker record)
// and its wake latency (p50 and p99 bars); nil when there is nothing to
// draw.
func cgroupPlots(cgs []CgroupStats) (share, wake *barPlot) {
	if len(cgs) > 0 {
		smax := 0.0
		for _, c := range cgs {
			smax = max(smax, c.CPUShare, c.MaxShare)
		}
		smax = niceMax(smax)
		share = &barPlot{W: f1(plotW), H: f1(barPlotRow*float64(len(cgs)) + padB), Axis: f1(barPlotLabel), Scale: "CPU share (cpu_time / wall), 0 to " + strconv.FormatFloat(smax, 'g', 3, 64)}
		for i, c := range cgs {
			sx := func(v float64) float64 { return barPlotLabel + v/smax*(plotW-barPlotLabel-60) }
			top := float64(i)*barPlotRow + 4
			b := bar{Label: c.Cgroup, Class: "bar share-bar", X: f1(barPlotLabel), Y: f1(top), W: f1(max(sx(c.CPUShare)-barPlotLabel, 1)),
				H: f1(barPlotRow - 8), TextX: f1(sx(c.CPUShare) + 4), TextY: f1(top + barPlotRow - 10),
				Value: strconv.FormatFloat(c.CPUShare, 'f', 3, 64)}
			if c.MaxShare > c.MinShare {
				b.Whisker, b.WX1, b.WX2, b.WY = true, f1(sx(c.MinShare)), f1(sx(c.MaxShare)), f1(top+(barPlotRow-8)/2)
			}
			share.Bars = append(share.Bars, b)
		}
	}
	var withWake []CgroupStats
	for _, c := range cgs {
		if c.HasWake {
			withWake = append(withWake, c)
		}
	}
	if len(withWake) > 0 {
		wmax := 0.0
		for _, c := range withWake {
			wmax = max(wmax, c.WakeP50US, c.WakeP99US)
		}
		wmax = niceMax(wmax)
		rowH := 2 * barPlotRow
		wake = &barPlot{W: f1(plotW), H: f1(rowH*float64(len(withWake)) + padB), Axis: f1(barPlotLabel), Scale: "wake latency, 0 to " + strconv.FormatFloat(wmax, 'g', 3, 64) + " us"}
		for i, c := range withWake {
			sx := func(v float64) float64 { return barPlotLabel + v/wmax*(plotW-barPlotLabel-80) }
			for k, q := range []struct {
				name string
				v    float64
			}{{"p50", c.WakeP50US}, {"p99", c.WakeP99US}} {
				top := float64(i)*rowH + float64(k)*barPlotRow + 4
				label := ""
				if k == 0 {
					label = c.Cgroup
				}
				wake.Bars = append(wake.Bars, bar{Label: label, Class: "bar wake-" + q.name, X: f1(barPlotLabel), Y: f1(top),
					W: f1(max(sx(q.v)-barPlotLabel, 1)), H: f1(barPlotRow - 8), TextX: f1(sx(q.v) + 4), TextY: f1(top + barPlotRow - 10),
					Value: q.name + " " + strconv.FormatFloat(q.v, 'f', 1, 64) + " us"})
			}
		}
	}
	return share, wake
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"line": oneLine, "stamp": stamp, "stampPtr": stampPtr}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{line .Title}}</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;font-size:90%}
#grid td.cell{text-align:center;font-weight:bold;min-width:5em}
td.pass,span.pass{background:#c8efc8}
td.fail,span.fail{background:#f6b8b8}
td.no_verdict,span.no_verdict{background:#f5e3a3}
td.error,span.error{background:#d9c2f0}
td.empty{background:#f4f4f4}
td.cell a{color:inherit;text-decoration:none}
span.badge{padding:.1em .5em;border-radius:.3em;font-weight:bold}
.mismatch{color:#a00;font-weight:bold}
section.variant{border-top:2px solid #888;margin-top:1.5em}
svg.plot{border:1px solid #ddd;background:#fff;display:block;margin:.3em 0}
svg text{font-size:10px;fill:#333}
rect.share-bar{fill:#4a7bd0}
rect.wake-p50{fill:#6fb36f}
rect.wake-p99{fill:#d07a4a}
line.whisker{stroke:#000;stroke-width:1.5}
polyline.rq-line{fill:none;stroke-width:1.2}
line.axis{stroke:#555}
p.nodata{color:#777;font-style:italic}
table.timeline td{font-family:monospace;font-size:80%}
table.timeline tr.trigger{background:#f6b8b8;font-weight:bold}
table.timeline tr.lastseen{background:#f5e3a3}
span.stack{color:#555}
ul.repro-tasks{font-family:monospace;font-size:85%}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:20em;font-size:85%}
</style>
</head>
<body>
<h1>{{line .Title}}</h1>
{{with .Run.Record}}<table class="runinfo">
<tr><th>suite</th><td>{{line .Suite}}</td><th>engine</th><td>{{line .Engine}}</td></tr>
<tr><th>host</th><td>{{line .Host}}</td><th>ktstr</th><td>{{line .KtstrVersion}}</td></tr>
<tr><th>started</th><td>{{stamp .Started}}</td><th>ended</th><td>{{stampPtr .Ended}}</td></tr>
</table>{{else}}<p class="nodata">run.json: {{line .Run.RecordErr}}</p>{{end}}
<p id="summary">{{.Summary}}</p>
<h2>Pass/fail grid</h2>
<table id="grid">
<tr><th>case</th>{{range .Schedulers}}<th>{{line .}}</th>{{end}}</tr>
{{range .Rows}}<tr><th>{{line .Case}}</th>{{range .Cells}}{{if .Empty}}<td class="empty"></td>{{else}}<td class="cell {{.Status}}" data-variant="{{line .Variant}}" data-status="{{.Status}}" title="{{line .Reason}}"><a href="#{{.Anchor}}">{{.Word}}{{if .Flag}} !{{end}}</a></td>{{end}}{{end}}</tr>
{{end}}</table>
{{range .Variants}}
<section class="variant" id="{{.Anchor}}" data-variant="{{line .Name}}" data-status="{{.Status}}">
<h2>{{line .Name}} <span class="badge {{.Status}}">{{.Word}}</span></h2>
<p class="reason">{{line .Reason}}</p>
{{if .Mismatch}}<p class="mismatch">mismatch: {{line .Mismatch}}</p>{{end}}
{{range .Notes}}<p class="note">note: {{line .}}</p>{{end}}
{{with .Meta}}<table class="meta">
<tr><th>scheduler</th><td>{{line .Scheduler}} {{range .SchedulerArgs}}{{line .}} {{end}}</td><th>scenario</th><td>{{line .Scenario}}</td></tr>
<tr><th>preset</th><td>{{line .Preset}}</td><th>topology</th><td>{{line .Topology}}</td></tr>
<tr><th>kernel</th><td>{{line .Kernel}} {{line .KernelVersion}}</td><th>rep</th><td>{{.Rep}}</td></tr>
<tr><th>started</th><td>{{stamp .Started}}</td><th>exit code</th><td>{{.ExitCode}}</td></tr>
</table>{{end}}
{{if .Metrics}}<table class="metrics"><tr><th>metric</th><th>value</th></tr>
{{range .Metrics}}<tr><td>{{.Name}}</td><td>{{.Value}} {{.Unit}}</td></tr>
{{end}}</table>{{end}}
<h3>Runqueue depth per CPU</h3>
{{with .RQ}}<svg class="plot rq" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
<line class="axis" x1="{{.X0}}" y1="{{.Y0}}" x2="{{.X1}}" y2="{{.Y0}}"/>
<line class="axis" x1="{{.X0}}" y1="{{.Y0}}" x2="{{.X0}}" y2="{{.Y1}}"/>
{{range .YTicks}}<text x="{{.X}}" y="{{.Y}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.X}}" y="{{.Y}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Lines}}<polyline class="rq-line" data-cpu="{{.CPU}}" stroke="{{.Color}}" points="{{.Points}}"/>
{{end}}</svg>
<p class="legend">{{range .Legend}}<span style="color:{{.Color}}">&#9632; cpu{{.CPU}}</span> {{end}}<br>nr_running over guest time; {{.Note}}</p>
{{else}}<p class="nodata">no monitor samples in this stream</p>{{end}}
<h3>Worker CPU share per cgroup</h3>
{{with .Share}}{{template "bars" .}}{{else}}<p class="nodata">no worker or cgroup metrics in this stream</p>{{end}}
<h3>Wake latency per cgroup</h3>
{{with .Wake}}{{template "bars" .}}{{else}}<p class="nodata">no wake-latency fields in this stream</p>{{end}}
{{template "bpf" .}}
{{template "repro" .}}
{{if .Console}}<details><summary>console (tail)</summary><pre class="console">{{.Console}}</pre></details>{{end}}
</section>
{{end}}
<h2>Metrics</h2>
<table class="defs"><tr><th>metric</th><th>unit</th><th>better</th><th>meaning</th></tr>
{{range .Defs}}<tr><td>{{.Name}}</td><td>{{.Unit}}</td><td>{{if .HigherBetter}}higher{{else}}lower{{end}}</td><td>{{.Doc}}</td></tr>
{{end}}</table>
</body>
</html>
{{define "bars"}}<svg class="plot bars" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
<line class="axis" x1="{{.Axis}}" y1="0" x2="{{.Axis}}" y2="{{.H}}"/>
{{range .Bars}}<text x="{{$.Axis}}" dx="-6" y="{{.TextY}}" text-anchor="end">{{line .Label}}</text>
<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"/>
{{if .Whisker}}<line class="whisker" x1="{{.WX1}}" y1="{{.WY}}" x2="{{.WX2}}" y2="{{.WY}}"/>{{end}}
<text x="{{.TextX}}" y="{{.TextY}}">{{.Value}}</text>
{{end}}<text x="{{.Axis}}" y="{{.H}}" dy="-6">{{.Scale}}</text>
</svg>{{end}}
`))
