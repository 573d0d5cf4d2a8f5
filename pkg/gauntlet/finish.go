package gauntlet

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// Finish marks the run ended in run.json, prints one line per variant
// and a total, and returns the exit code: fail wins over error, error
// over no verdict (a missing record counts as an error).
func Finish(rundir string, w io.Writer) (int, error) {
	run, err := runrecord.ReadRun(rundir)
	if err != nil {
		return ExitError, err
	}
	now := time.Now().UTC()
	run.Ended = &now
	if err := runrecord.WriteRun(rundir, run); err != nil {
		return ExitError, err
	}
	rec, err := runrecord.Read(rundir)
	if err != nil {
		return ExitError, err
	}
	count := map[string]int{}
	sum := 0.0
	for _, m := range rec.Metas {
		count[m.Verdict]++
		sum += m.WallS
		fmt.Fprintf(w, "%-10s %-50s %7.1f s  %s\n", strings.ToUpper(m.Verdict), m.Variant, m.WallS, m.Reason)
	}
	for _, v := range rec.Missing {
		fmt.Fprintf(w, "%-10s %-50s %7s    no meta.json: not run, or interrupted\n", "MISSING", v, "-")
	}
	wall := now.Sub(run.Started).Seconds()
	ratio := 0.0
	if wall > 0 {
		ratio = sum / wall
	}
	fmt.Fprintf(w, "gauntlet: %d variants: %d pass, %d fail, %d no verdict, %d error, %d missing; wall %.1f s, sum of variants %.1f s (%.2fx) in %s\n",
		len(run.Variants), count[runrecord.Pass], count[runrecord.Fail], count[runrecord.NoVerdict], count[runrecord.Error],
		len(rec.Missing), wall, sum, ratio, rundir)
	switch {
	case count[runrecord.Fail] > 0:
		return ExitFail, nil
	case count[runrecord.Error] > 0 || len(rec.Missing) > 0:
		return ExitError, nil
	case count[runrecord.NoVerdict] > 0:
		return ExitNoVerdict, nil
	}
	return ExitPass, nil
}
