// Command ktstr-report: see man/ktstr-report.1.
package main

import (
	"bufio"
	"os"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/report"
	"github.com/urfave/cli/v2"
)

// Exit codes (man/ktstr-report.1).
const (
	exitNotAllPass = 1 // a variant did not pass; compare: a regression
	exitIO         = 2 // usage errors (cmdutil), unreadable run directory, unwritable output
)

func main() {
	a := app()
	os.Exit(cmdutil.Run(a, intersperse(a, os.Args), os.Stderr))
}

// intersperse lets options follow operands, as in every ktstr tool
// (cmdutil.Intersperse), for the report and for compare: cmdutil does it
// only for apps without commands. Operands end up after "--", so a run
// directory named like an option or "compare" is an operand.
func intersperse(a *cli.App, args []string) []string {
	if len(args) > 1 && args[1] == "compare" {
		for _, c := range a.Commands {
			if c.Name == "compare" {
				sub := cmdutil.Intersperse(&cli.App{Flags: c.Flags}, args[1:])
				return append([]string{args[0]}, sub...)
			}
		}
	}
	return cmdutil.Intersperse(a, args)
}

// app is the command line, for main and the man page's test.
func app() *cli.App {
	return &cli.App{
		Name:      "ktstr-report",
		Usage:     "report on a ktstr-gauntlet run directory, or compare two",
		ArgsUsage: "RUNDIR",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "text, json, junit or html"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report to `FILE` (default: standard output)"},
		},
		Action: reportAction,
		Commands: []*cli.Command{{
			Name:      "compare",
			Usage:     "compare run B against run A, metric by metric; exit 1 on a regression",
			ArgsUsage: "A B",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "abs", Usage: "absolute gate `METRIC=X` in the metric's unit (repeatable)"},
				&cli.StringSliceFlag{Name: "rel", Usage: "relative gate `METRIC=PCT` in percent (repeatable)"},
				&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "text or json"},
			},
			Action: compareAction,
		}},
	}
}

func reportAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cmdutil.UsageError("want one RUNDIR, got %d operands (see --help)", c.NArg())
	}
	f, err := report.ParseFormat(c.String("format"))
	if err != nil {
		return cmdutil.UsageError("--format: %v", err)
	}
	run, err := report.Load(c.Args().First())
	if err != nil {
		return cmdutil.Exit(exitIO, err)
	}
	if out := c.String("output"); out != "" && out != "-" {
		err = report.WriteFile(out, run, f)
	} else {
		w := bufio.NewWriterSize(os.Stdout, 64<<10)
		err = report.Write(w, run, f)
		if ferr := w.Flush(); err == nil && ferr != nil {
			err = ferr
		}
	}
	if err != nil {
		return cmdutil.Exit(exitIO, err)
	}
	if !run.AllPass() {
		return cmdutil.Exitf(exitNotAllPass, "not all variants passed: %s", run.Summary())
	}
	return nil
}

func compareAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return cmdutil.UsageError("compare: want two run directories A B, got %d operands (see --help)", c.NArg())
	}
	format := c.String("format")
	if format != "text" && format != "json" {
		return cmdutil.UsageError("compare --format: %q is not text or json", format)
	}
	g := report.Gates{Abs: map[string]float64{}, Rel: map[string]float64{}}
	for _, s := range c.StringSlice("abs") {
		name, x, err := report.ParseGate(s, false)
		if err != nil {
			return cmdutil.UsageError("--abs %v", err)
		}
		g.Abs[name] = x
	}
	for _, s := range c.StringSlice("rel") {
		name, x, err := report.ParseGate(s, true)
		if err != nil {
			return cmdutil.UsageError("--rel %v", err)
		}
		g.Rel[name] = x
	}
	a, err := report.Load(c.Args().Get(0))
	if err != nil {
		return cmdutil.Exit(exitIO, err)
	}
	b, err := report.Load(c.Args().Get(1))
	if err != nil {
		return cmdutil.Exit(exitIO, err)
	}
	cmp := report.Compare(a, b, g)
	w := bufio.NewWriter(os.Stdout)
	if format == "json" {
		err = cmp.WriteJSON(w)
	} else {
		err = cmp.WriteText(w)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return cmdutil.Exitf(exitIO, "write comparison: %w", err)
	}
	if cmp.Regressed() {
		return cmdutil.Exitf(exitNotAllPass, "%d regression(s) of B against A", cmp.Regressions)
	}
	return nil
}
