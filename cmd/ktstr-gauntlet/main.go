// Command ktstr-gauntlet: see man/ktstr-gauntlet.1.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/gauntlet"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/urfave/cli/v2"
)

func main() { cmdutil.Main(app()) }

func app() *cli.App {
	return &cli.App{
		Name:      "ktstr-gauntlet",
		Usage:     "run a suite of ktstr-run variants (schedulers x scenarios x presets x kernels) through make, GNU parallel or Slurm",
		ArgsUsage: "SUITE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "rundir", Usage: "the run directory (default runs/KERNEL-VERSION/TIMESTAMP)"},
			&cli.BoolFlag{Name: "resume", Usage: "finish the variants of --rundir that have no record"},
			&cli.StringFlag{Name: "engine", Value: "make", Usage: "make, parallel or slurm"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "variants at once (default: as many as the host's CPUs or, reserving whole LLCs, its LLCs hold side by side)"},
			&cli.StringSliceFlag{Name: "only", Usage: "run only variants matching GLOB (repeatable)"},
			&cli.StringSliceFlag{Name: "exclude", Usage: "leave out variants matching GLOB (repeatable)"},
			&cli.DurationFlag{Name: "budget", Usage: "pick the most diverse variants that fit in DURATION of estimated time"},
			&cli.StringFlag{Name: "sshloginfile", Usage: "with --engine parallel: GNU parallel's --sshloginfile (hosts to run on)"},
			&cli.StringSliceFlag{Name: "sbatch-arg", Usage: "with --engine slurm: an sbatch option (repeatable)"},
			&cli.StringFlag{Name: "ktstr-run", EnvVars: []string{"KTSTR_RUN"}, Usage: "the ktstr-run to run (default: beside ktstr-gauntlet, else $PATH)"},
			&cli.StringFlag{Name: "reserve", Usage: "every variant's ktstr-run --reserve: llcs (whole LLCs) or cpus (default: the suite's \"reserve\", else llcs)"},
			&cli.BoolFlag{Name: "no-auto-repro", Usage: "run ktstr-run without --auto-repro (the default is the suite's auto_repro, true unless set)"},
			&cli.BoolFlag{Name: "list", Usage: "print the variants that would run, and exit"},
			&cli.BoolFlag{Name: "list-presets", Usage: "print the topology presets, and exit"},
		},
		Action: run,
		Commands: []*cli.Command{
			{Name: "run-variant", Hidden: true, ArgsUsage: "RUNDIR VARIANT", Usage: "run one variant of a run directory (the engines call it)", Action: runVariant},
			{Name: "finish", Hidden: true, ArgsUsage: "RUNDIR", Usage: "mark the run ended, print its summary, exit with its status", Action: finish},
		},
	}
}

func run(c *cli.Context) error {
	if c.Bool("list-presets") {
		for _, p := range topology.Presets() {
			fmt.Printf("%-20s %-12s %4d CPUs  %s\n", p.Name, p.Shape, p.Shape.NumCPUs(), p.About)
		}
		return nil
	}
	if c.NArg() > 1 {
		return cmdutil.UsageError("one suite file, got %d arguments (options go before it)", c.NArg())
	}
	if c.NArg() == 0 && !c.Bool("resume") {
		return cmdutil.UsageError("no suite file given (see ktstr-suite(5))")
	}
	self, err := os.Executable()
	if err != nil {
		return cmdutil.Exit(gauntlet.ExitError, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	code, err := gauntlet.Run(ctx, gauntlet.Options{
		Suite: c.Args().First(), RunDir: c.String("rundir"), Resume: c.Bool("resume"), Engine: c.String("engine"),
		Jobs: c.Int("jobs"), Only: c.StringSlice("only"), Exclude: c.StringSlice("exclude"), Budget: c.Duration("budget"),
		SSHLoginFile: c.String("sshloginfile"), SbatchArgs: c.StringSlice("sbatch-arg"), KtstrRun: c.String("ktstr-run"),
		Self: self, Version: cmdutil.Version, KernelEnv: os.Getenv("KTSTR_KERNEL"), List: c.Bool("list"),
		Reserve: c.String("reserve"), NoAutoRepro: c.Bool("no-auto-repro"),
		Stdout: os.Stdout, Stderr: os.Stderr,
	})
	if err != nil {
		return cmdutil.Exit(code, err)
	}
	return cmdutil.Quiet(code)
}

func runVariant(c *cli.Context) error {
	if c.NArg() != 2 {
		return cmdutil.UsageError("run-variant RUNDIR VARIANT")
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	_, err := gauntlet.RunVariant(context.Background(), c.Args().Get(0), c.Args().Get(1),
		gauntlet.VariantOptions{Version: cmdutil.Version, Stderr: os.Stderr, Sigs: sigs})
	// The verdict is in the record: exit 0 when one was written, 4 when
	// not (an interrupted variant included, so --resume runs it again).
	return cmdutil.Exit(gauntlet.ExitError, err)
}

func finish(c *cli.Context) error {
	if c.NArg() != 1 {
		return cmdutil.UsageError("finish RUNDIR")
	}
	code, err := gauntlet.Finish(c.Args().First(), os.Stdout)
	if err != nil {
		return cmdutil.Exit(code, err)
	}
	return cmdutil.Quiet(code)
}
