package report

import (
	"html/template"
	"strconv"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// MetricVerifiedInsns is the BPF verifier's work on the scheduler:
// Compare gates it like the others (metrics.go's table).
const MetricVerifiedInsns = "total_verified_insns"

// maxBPFProgs bounds the programs kept from one bpf_prog_stats frame (the
// guest sends at most 512; the stream is untrusted).
const maxBPFProgs = 1024

// BPFStats is the scheduler's BPF programs as the stream's first
// bpf_prog_stats frame lists them (the guest sends one after the
// scheduler attached): what the verifier did with each.
type BPFStats struct {
	Scheduler  string         `json:"scheduler"`
	SelectedBy string         `json:"selected_by"` // how the guest told them from other programs: fd or load_time
	Programs   []wire.BPFProg `json:"programs"`
	// TotalVerifiedInsns sums the programs' verified instructions (the
	// total_verified_insns metric when it is above 0: kernels before 5.16
	// report none).
	TotalVerifiedInsns uint64 `json:"total_verified_insns"`
	Omitted            int    `json:"programs_omitted,omitempty"` // past maxBPFProgs
	Frames             int    `json:"frames"`                     // bpf_prog_stats frames in the stream (the first is shown)
}

// bpfAcc keeps the first bpf_prog_stats frame and counts the rest.
type bpfAcc struct {
	st *BPFStats
	n  int
}

func (a *bpfAcc) frame(s *wire.BPFProgStats) {
	a.n++
	if a.st != nil {
		return
	}
	st := &BPFStats{Scheduler: s.Scheduler, SelectedBy: s.SelectedBy, Programs: []wire.BPFProg{}}
	for i, p := range s.Programs {
		if i == maxBPFProgs {
			st.Omitted = len(s.Programs) - i
			break
		}
		p.MapIDs = nil // not shown; unbounded
		st.Programs = append(st.Programs, p)
		st.TotalVerifiedInsns += uint64(p.VerifiedInsns)
	}
	a.st = st
}

func (a *bpfAcc) result() *BPFStats {
	if a.st != nil {
		a.st.Frames = a.n
	}
	return a.st
}

func (a *bpfAcc) metrics(m map[string]float64) {
	if a.st != nil && a.st.TotalVerifiedInsns > 0 {
		m[MetricVerifiedInsns] = float64(a.st.TotalVerifiedInsns)
	}
}

// bpfRow is a program as the HTML table shows it.
type bpfRow struct {
	Name, Type, Insns, Load, Jited string
}

// Rows are the programs as the HTML table shows them: load time relative
// to the scheduler's start.
func (s *BPFStats) Rows() []bpfRow {
	rows := make([]bpfRow, len(s.Programs))
	for i, p := range s.Programs {
		load := time.Duration(p.LoadOffsetNS).String()
		if p.LoadOffsetNS >= 0 {
			load = "+" + load
		}
		rows[i] = bpfRow{Name: p.Name, Type: p.Type, Insns: strconv.FormatUint(uint64(p.VerifiedInsns), 10), Load: load, Jited: "-"}
		if p.JitedSize > 0 {
			rows[i].Jited = strconv.FormatUint(uint64(p.JitedSize), 10) + " B"
		}
	}
	return rows
}

// The HTML of a variant's BPF verifier statistics (the page template
// calls it).
var _ = template.Must(pageTemplate.New("bpf").Parse(`{{with .BPF}}<h3>BPF verifier statistics</h3>
<table class="bpf" data-total-insns="{{.TotalVerifiedInsns}}">
<tr><th>program</th><th>type</th><th>verified insns</th><th>loaded (from scheduler start)</th><th>JITed</th></tr>
{{range .Rows}}<tr class="bpf-prog"><td>{{line .Name}}</td><td>{{line .Type}}</td><td>{{.Insns}}</td><td>{{.Load}}</td><td>{{.Jited}}</td></tr>
{{end}}<tr class="bpf-total"><th>total</th><td></td><th>{{.TotalVerifiedInsns}}</th><td></td><td></td></tr>
</table>
<p class="note">scheduler {{line .Scheduler}}, programs selected by {{line .SelectedBy}}{{if .Omitted}}; {{.Omitted}} more not shown{{end}}{{if gt .Frames 1}}; the first of {{.Frames}} bpf_prog_stats frames{{end}}</p>{{end}}`))
