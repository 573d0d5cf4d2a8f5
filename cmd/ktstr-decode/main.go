// Command ktstr-decode: see man/ktstr-decode.1.
package main

import (
	"errors"
	"os"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/decode"
	"github.com/urfave/cli/v2"
)

// Exit codes (man/ktstr-decode.1).
const (
	exitCorrupt = 1 // --strict and the stream had corruption, truncation or a bad payload
	exitIO      = 2 // usage errors (cmdutil), unreadable input, unwritable output
	exitNoProbe = 3 // --timeline and the stream has no auto-repro probe frames
)

func main() {
	cmdutil.Main(&cli.App{
		Name:      "ktstr-decode",
		Usage:     "print a ktstr frame stream as text or JSON lines",
		ArgsUsage: "[FILE|-]...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Aliases: []string{"j"}, Usage: "one JSON object per line instead of text"},
			&cli.StringSliceFlag{Name: "type", Aliases: []string{"t"}, Usage: "show only these types (names, numbers, or user); repeatable, comma lists"},
			&cli.BoolFlag{Name: "stats", Usage: "print frame, byte and corruption counts after the stream"},
			&cli.BoolFlag{Name: "summary", Usage: "print a table of cgroup metrics, check results, exits and the verdict line after the stream"},
			&cli.BoolFlag{Name: "verdict", Usage: "print the run's verdict line after the stream and exit 0 pass, 1 fail, 3 no verdict"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no frame records (diagnostics, --stats and --summary still print)"},
			&cli.BoolFlag{Name: "strict", Usage: "exit 1 if the stream had any corruption, truncated frame or bad payload"},
			&cli.BoolFlag{Name: "timeline", Usage: "print the auto-repro probe events (probe_event, probe_meta) as a timeline, per event and per task, instead of the frames"},
			&cli.IntFlag{Name: "timeline-events", Usage: "with --timeline: show only the last N events before the trigger and N/4 after (0: all)"},
			&cli.BoolFlag{Name: "line-buffered", Usage: "write each record as soon as it is made (default when stdout is a terminal)"},
		},
		Action: run,
	})
}

func run(c *cli.Context) error {
	filter, err := decode.ParseFilter(c.StringSlice("type"))
	if err != nil {
		return cmdutil.UsageError("--type: %v", err)
	}
	in, closeIn, err := decode.OpenInputs(c.Args().Slice(), os.Stdin)
	if err != nil {
		return cmdutil.Exit(exitIO, err)
	}
	defer closeIn()
	if c.Bool("timeline") {
		if c.Int("timeline-events") < 0 {
			return cmdutil.UsageError("--timeline-events: want 0 or more")
		}
		err := decode.Timeline(in, os.Stdout, decode.TimelineOptions{Events: c.Int("timeline-events")})
		if errors.Is(err, decode.ErrNoProbes) {
			return cmdutil.Exit(exitNoProbe, err)
		}
		return cmdutil.Exit(exitIO, err)
	}
	o := decode.Options{
		Filter:       filter,
		Quiet:        c.Bool("quiet"),
		Stats:        c.Bool("stats"),
		Summary:      c.Bool("summary"),
		Verdict:      c.Bool("verdict"),
		Strict:       c.Bool("strict"),
		LineBuffered: c.Bool("line-buffered") || decode.IsTerminal(os.Stdout),
		DiagPrefix:   c.App.Name + ": ",
	}
	if c.Bool("json") {
		o.Format = decode.JSON
	}
	if !decode.SameFile(os.Stdout, os.Stderr) {
		o.Diag = os.Stderr
	}
	st, err := decode.Run(in, os.Stdout, o)
	if o.Verdict && st != nil && st.Verdict != nil && (err == nil || errors.Is(err, decode.ErrCorrupt)) {
		// The verdict's code covers corruption too (no verdict, or fail).
		return cmdutil.Quiet(st.Verdict.ExitCode)
	}
	if errors.Is(err, decode.ErrCorrupt) {
		return cmdutil.Exit(exitCorrupt, err)
	}
	return cmdutil.Exit(exitIO, err)
}
