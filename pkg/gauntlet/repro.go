package gauntlet

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ktstr-go/ktstr/pkg/decode"
	"github.com/ktstr-go/ktstr/pkg/pipeline"
	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// reproFiles are the variant's auto-repro files while it runs (partial
// paths: ktstr-run saves the second stream at pipeline.ReproPath of its
// --save) and their names in the record.
func reproFiles(dir string) [][2]string {
	return [][2]string{
		{pipeline.ReproPath(filepath.Join(dir, partial(runrecord.StreamFile))), runrecord.ReproStreamFile},
		{filepath.Join(dir, partial(runrecord.ReproTimelineFile)), runrecord.ReproTimelineFile},
	}
}

// removeRepro removes the variant's auto-repro files, partial and, with
// final, recorded.
func removeRepro(dir string, final bool) {
	for _, f := range reproFiles(dir) {
		os.Remove(f[0])
		if final {
			os.Remove(filepath.Join(dir, f[1]))
		}
	}
}

// writeReproTimeline writes the timeline of the second boot's stream, when
// ktstr-run saved one, to its partial file (finish renames both into
// place): the window ktstr-run prints (decode.DefaultTimelineEvents); the
// stream holds every event. A stream without probe frames gets a timeline that says so.
func writeReproTimeline(dir string) error {
	files := reproFiles(dir)
	in, err := os.Open(files[0][0])
	if errors.Is(err, os.ErrNotExist) {
		return nil // no second boot
	}
	if err != nil {
		return fmt.Errorf("auto-repro stream: %w", err)
	}
	defer in.Close()
	out, err := os.Create(files[1][0])
	if err != nil {
		return fmt.Errorf("auto-repro timeline: %w", err)
	}
	w := bufio.NewWriter(out)
	terr := decode.Timeline(bufio.NewReaderSize(in, 256<<10), w, decode.TimelineOptions{Events: decode.DefaultTimelineEvents})
	if terr != nil {
		fmt.Fprintf(w, "ktstr-gauntlet: %s: %v\n", runrecord.ReproStreamFile, terr)
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("auto-repro timeline: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("auto-repro timeline: %w", err)
	}
	return nil
}
