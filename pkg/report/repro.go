package report

import (
	"bufio"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ktstr-go/ktstr/pkg/decode"
	"github.com/ktstr-go/ktstr/pkg/regfile"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// Repro is a variant's auto-repro record: the second boot's stream
// (RUNDIR/VARIANT/repro.ktstr, which ktstr-gauntlet keeps when
// ktstr-run --auto-repro booted again) and its timeline, stitched by
// pkg/decode (the window ktstr-run prints: decode.DefaultTimelineEvents).
type Repro struct {
	Stream   string               `json:"stream"` // the file
	Timeline *decode.TimelineView `json:"timeline,omitempty"`
	// Error says why there is no timeline, or what is odd about it (a
	// stream without probe frames).
	Error string `json:"error,omitempty"`
}

// loadRepro reads the variant's auto-repro stream; nil when it has none.
func loadRepro(vdir string) *Repro {
	p := filepath.Join(vdir, runrecord.ReproStreamFile)
	f, _, err := regfile.Open(p, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	r := &Repro{Stream: p}
	if err != nil {
		r.Error = printable(err.Error())
		return r
	}
	defer f.Close()
	v, err := decode.ReadTimeline(bufio.NewReaderSize(f, 256<<10), decode.TimelineOptions{Events: decode.DefaultTimelineEvents})
	r.Timeline = v
	if err != nil {
		r.Error = printable(err.Error())
	}
	return r
}

// writeReproText writes one line per variant with an auto-repro stream:
// its trigger, its event count and where the timeline is.
func writeReproText(w io.Writer, run *Run) {
	for _, v := range run.Variants {
		r := v.Repro
		if r == nil {
			continue
		}
		what := ""
		switch {
		case r.Timeline == nil || !r.Timeline.Probes:
			what = "no timeline: " + r.Error
		case r.Timeline.Trigger != "":
			what = fmt.Sprintf("%d probe events, trigger %s", r.Timeline.Total, r.Timeline.Trigger)
		default:
			what = fmt.Sprintf("%d probe events, no trigger", r.Timeline.Total)
		}
		fmt.Fprintf(w, "auto-repro: %s: %s; ktstr-decode --timeline %s\n", oneLine(v.Name), oneLine(what), oneLine(r.Stream))
	}
}

// reproDetail is the variant's auto-repro timeline as text for a JUnit
// failure ("" without one): CI shows what led to the failure.
func reproDetail(v *Variant) string {
	if v.Repro == nil || v.Repro.Timeline == nil || !v.Repro.Timeline.Probes {
		return ""
	}
	return "\n\n" + string(v.Repro.Timeline.AppendText(nil))
}

// The HTML of a variant's auto-repro timeline (the page template calls
// it): the summary lines, the events of the window (the trigger's row
// classed "trigger", a task's last event from before the window
// "lastseen") and the per-task chains.
var _ = template.Must(pageTemplate.New("repro").Parse(`{{with .Repro}}<h3>Auto-repro timeline</h3>
<div class="repro">
<p class="repro-stream">second boot with BPF probes: {{line .Stream}}{{if .Error}}; {{line .Error}}{{end}}</p>
{{with .Timeline}}<ul class="repro-summary">{{range .Summary}}<li>{{line .}}</li>{{end}}</ul>
{{if .Events}}<table class="timeline" data-total="{{.Total}}">
<tr><th>time (ms)</th><th>CPU</th><th>running</th><th>function</th><th>fields</th></tr>
{{range .Events}}<tr class="{{if .Trigger}}trigger{{else if .LastSeen}}lastseen{{else}}event{{end}}"><td>{{.RelMS}}</td><td>{{.CPU}}</td><td>{{line .Running}}</td><td>{{line .Func}}</td><td>{{line .Fields}}{{if .Stack}}<br><span class="stack">stack: {{range $i, $f := .Stack}}{{if $i}} &larr; {{end}}{{line $f}}{{end}}</span>{{end}}</td></tr>
{{end}}</table>
{{end}}{{if .Tasks}}<p>per task (most recently touched first; its last 12 events up to the trigger):</p>
<ul class="repro-tasks">{{range .Tasks}}<li data-pid="{{.PID}}">{{.PID}}{{if .Comm}}/{{line .Comm}}{{end}}{{if .Named}} (named by the scheduler's exit){{end}}:{{range $i, $s := .Steps}}{{if $i}} &rarr;{{end}} {{line $s.Func}}@{{$s.RelMS}}/cpu{{$s.CPU}}{{if $s.LastSeen}}(last seen){{end}}{{if $s.DSQ}}[{{$s.DSQ}}]{{end}}{{else}} no event recorded{{end}}</li>
{{end}}</ul>{{end}}{{if .Dropped}}<p class="nodata">{{.Dropped}} probe_event frames past the first ones were not read</p>{{end}}{{end}}
</div>{{end}}`))
