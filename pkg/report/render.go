package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Format is an output format of ktstr-report.
type Format string

// The formats.
const (
	FormatText  Format = "text"
	FormatJSON  Format = "json"
	FormatJUnit Format = "junit"
	FormatHTML  Format = "html"
)

// ParseFormat accepts a format's name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatText, FormatJSON, FormatJUnit, FormatHTML:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want text, json, junit or html)", s)
}

// Write renders run in format f to w.
func Write(w io.Writer, run *Run, f Format) error {
	var err error
	switch f {
	case FormatText:
		err = WriteText(w, run)
	case FormatJSON:
		err = WriteJSON(w, run)
	case FormatJUnit:
		err = WriteJUnit(w, run)
	case FormatHTML:
		err = WriteHTML(w, run)
	default:
		err = fmt.Errorf("unknown format %q", f)
	}
	if err != nil {
		return fmt.Errorf("write %s report: %w", f, err)
	}
	return nil
}

// oneLine makes untrusted text safe for one line of a terminal: control
// characters (newlines and escapes included) are written as Go escapes.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Summary is the one line that counts a run's variants by status.
func (r *Run) Summary() string {
	c := r.Counts
	return fmt.Sprintf("%d variants: %d pass, %d fail, %d no verdict, %d error",
		len(r.Variants), c.Pass, c.Fail, c.NoVerdict, c.Error)
}

// WriteText writes the status grid (writeGrid), then one line per variant
// with its status, wall time and, for every variant that did not pass, the
// reason; then mismatches and notes; then the counts.
func WriteText(w io.Writer, run *Run) error {
	bw := &errWriter{w: w}
	if rec := run.Record; rec != nil {
		fmt.Fprintf(bw, "run: suite=%s engine=%s host=%s ktstr=%s started=%s ended=%s\n",
			orQ(rec.Suite), orQ(rec.Engine), orQ(rec.Host), orQ(rec.KtstrVersion), orQ(stamp(rec.Started)), orQ(stampPtr(rec.Ended)))
	} else {
		fmt.Fprintf(bw, "run: %s\n", oneLine(run.RecordErr))
	}
	writeGrid(bw, run)
	tw := tabwriter.NewWriter(bw, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tWALL\tVARIANT\tREASON")
	for _, v := range run.Variants {
		wall := "-"
		if s, ok := v.Metrics[MetricWall]; ok {
			wall = fmt.Sprintf("%.1fs", s)
		}
		reason := ""
		if v.Status != StatusPass {
			reason = oneLine(v.Reason)
		}
		mark := ""
		if v.Mismatch != "" {
			mark = "!"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", v.Status.Word(), mark, wall, oneLine(v.Name), reason)
	}
	tw.Flush()
	for _, v := range run.Variants {
		if v.Mismatch != "" {
			fmt.Fprintf(bw, "mismatch: %s: %s\n", oneLine(v.Name), oneLine(v.Mismatch))
		}
		for _, n := range v.Notes {
			fmt.Fprintf(bw, "note: %s: %s\n", oneLine(v.Name), oneLine(n))
		}
	}
	writeReproText(bw, run)
	fmt.Fprintln(bw, run.Summary())
	return bw.err
}

// writeGrid writes the status grid: a row per case (scenario/preset[...]),
// a column per scheduler (there are fewer schedulers than cases), each
// cell the variant's status ("!" after it on a mismatch, "-" where the
// run has no such variant).
func writeGrid(w io.Writer, run *Run) {
	if len(run.Variants) == 0 {
		return
	}
	var scheds, cases []string
	col, row := map[string]int{}, map[string]int{}
	for _, v := range run.Variants {
		if _, ok := col[v.Scheduler]; !ok {
			col[v.Scheduler] = len(scheds)
			scheds = append(scheds, v.Scheduler)
		}
		if _, ok := row[v.Case]; !ok {
			row[v.Case] = len(cases)
			cases = append(cases, v.Case)
		}
	}
	sort.Strings(cases)
	for i, c := range cases {
		row[c] = i
	}
	sort.Strings(scheds)
	for i, c := range scheds {
		col[c] = i
	}
	cells := make([][]string, len(cases))
	for i := range cells {
		cells[i] = make([]string, len(scheds))
		for j := range cells[i] {
			cells[i][j] = "-"
		}
	}
	for _, v := range run.Variants {
		c := v.Status.Word()
		if v.Mismatch != "" {
			c += "!"
		}
		cells[row[v.Case]][col[v.Scheduler]] = c
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "CASE")
	for _, s := range scheds {
		fmt.Fprintf(tw, "\t%s", oneLine(s))
	}
	fmt.Fprintln(tw)
	for i, c := range cases {
		fmt.Fprint(tw, oneLine(c))
		for _, x := range cells[i] {
			fmt.Fprintf(tw, "\t%s", x)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// stamp writes a time from the run directory as its JSON has it (RFC 3339);
// "" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// stampPtr is stamp of an optional time (run.json's ended: nil while the
// run goes on or when it was cut off).
func stampPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return stamp(*t)
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return oneLine(s)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// WriteJSON writes the whole Run as one indented JSON object.
func WriteJSON(w io.Writer, run *Run) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(run)
}

// JUnit XML, the dialect Jenkins, GitLab and GitHub test reporters read.
type junitSuites struct {
	XMLName  xml.Name   `xml:"testsuites"`
	Name     string     `xml:"name,attr"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Errors   int        `xml:"errors,attr"`
	Time     string     `xml:"time,attr"`
	Suites   []junitSub `xml:"testsuite"`
}

type junitSub struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Hostname  string      `xml:"hostname,attr,omitempty"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut *junitCDATA   `xml:"system-out,omitempty"`
}

// junitCDATA is console text as CDATA, readable in the file; printable
// has made it valid XML text.
type junitCDATA struct {
	Text string `xml:",cdata"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes one testcase per variant: a failed variant has a
// failure whose message is its reason, a variant without a verdict (or
// that did not run) an error; system-out holds the end of its console.
func WriteJUnit(w io.Writer, run *Run) error {
	suite := junitSub{Name: "ktstr"}
	if rec := run.Record; rec != nil {
		if rec.Suite != "" {
			suite.Name = rec.Suite
		}
		suite.Hostname, suite.Timestamp = rec.Host, stamp(rec.Started)
	}
	total := 0.0
	for _, v := range run.Variants {
		wall := v.Metrics[MetricWall]
		total += wall
		c := junitCase{Name: v.Name, Classname: "ktstr." + v.Scheduler, Time: fmt.Sprintf("%.3f", wall)}
		if v.Console != "" {
			c.SystemOut = &junitCDATA{v.Console}
		}
		detail := v.Reason
		if v.Verdict != nil && len(v.Verdict.Reasons) > 1 {
			detail = strings.Join(v.Verdict.Reasons, "\n")
		}
		if v.Mismatch != "" {
			detail += "\n" + v.Mismatch
		}
		for _, n := range v.Notes {
			detail += "\n" + n
		}
		detail += reproDetail(v)
		switch v.Status {
		case StatusPass:
		case StatusFail:
			suite.Failures++
			c.Failure = &junitProblem{Message: v.Reason, Type: "fail", Text: detail}
		default:
			suite.Errors++
			c.Error = &junitProblem{Message: v.Reason, Type: string(v.Status), Text: detail}
		}
		suite.Cases = append(suite.Cases, c)
	}
	suite.Tests = len(suite.Cases)
	suite.Time = fmt.Sprintf("%.3f", total)
	doc := junitSuites{Name: suite.Name, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Time: suite.Time, Suites: []junitSub{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteFile renders run in format f to path, through a temporary file in
// the same directory renamed into place, so that a reader never sees half
// a report.
func WriteFile(path string, run *Run, f Format) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, run, f); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
