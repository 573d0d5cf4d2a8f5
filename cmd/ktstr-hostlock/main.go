// Command ktstr-hostlock: see man/ktstr-hostlock.1.
package main

import (
	"errors"
	"os"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/hostlock"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func main() { cmdutil.MainCommand(app()) }

func app() *cli.App {
	return &cli.App{
		Name:      "ktstr-hostlock",
		Usage:     "reserve host LLCs or CPUs with flocks while a command runs",
		ArgsUsage: "[--] command [args...]",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "llcs", Usage: "reserve `N` whole LLCs, exclusively unless --shared (default: 1)"},
			&cli.IntFlag{Name: "cpus", Usage: "reserve `N` CPUs, packed into as few LLCs as possible"},
			&cli.StringFlag{Name: "cpu-cap", Usage: "reserve a shared budget of `N` CPUs, or P% of the allowed CPUs"},
			&cli.BoolFlag{Name: "shared", Usage: "with --llcs: shared (LOCK_SH) instead of exclusive"},
			&cli.IntFlag{Name: "numa-node", Value: -1, Usage: "take everything from NUMA node `N`"},
			&cli.BoolFlag{Name: "no-wait", Aliases: []string{"n"}, Usage: "exit 75 at once when not enough is free"},
			&cli.StringFlag{Name: "timeout", Value: "10m", Usage: "give up waiting after `DURATION` (0: never)"},
			&cli.BoolFlag{Name: "pin", Usage: "set the command's CPU affinity to the reserved CPUs"},
			&cli.BoolFlag{Name: "print", Usage: "print the reservation it would take (without waiting) and exit"},
			&cli.BoolFlag{Name: "hold", Usage: "print the reservation and hold it until SIGINT, SIGTERM or SIGHUP"},
			&cli.BoolFlag{Name: "status", Usage: "show every LLC and CPU with its holders"},
			&cli.BoolFlag{Name: "json", Usage: "with --print, --hold or --status: JSON output"},
			&cli.StringFlag{Name: "lock-dir", Usage: "lock directory `DIR` (default $KTSTR_LOCK_DIR, /run/ktstr/locks, $XDG_RUNTIME_DIR/ktstr)"},
			&cli.StringFlag{Name: "sysfs-root", Value: hosttopo.DefaultRoot, Usage: "read the topology from sysfs mounted at `DIR` (tests)"},
		},
		Action: action,
	}
}

func action(c *cli.Context) error {
	o := hostlock.Options{Pin: c.Bool("pin"), Print: c.Bool("print"), Hold: c.Bool("hold"), Status: c.Bool("status"),
		JSON: c.Bool("json"), LockDir: c.String("lock-dir"), SysfsRoot: c.String("sysfs-root"), Argv: c.Args().Slice()}
	o.Request = hostlock.Request{Kind: hostlock.LLCs, Count: 1, Shared: c.Bool("shared"), Node: c.Int("numa-node"), NoWait: c.Bool("no-wait")}
	modes := 0
	for _, f := range []string{"llcs", "cpus", "cpu-cap"} {
		if c.IsSet(f) {
			modes++
		}
	}
	actions := 0
	for _, f := range []string{"print", "hold", "status"} {
		if c.Bool(f) {
			actions++
		}
	}
	switch {
	case modes > 1:
		return cmdutil.UsageError("--llcs, --cpus and --cpu-cap exclude each other")
	case actions > 1:
		return cmdutil.UsageError("--print, --hold and --status exclude each other")
	case o.Status && (modes > 0 || c.IsSet("shared") || c.IsSet("pin") || len(o.Argv) > 0):
		return cmdutil.UsageError("--status takes only --json, --lock-dir and --sysfs-root")
	case actions == 0 && len(o.Argv) == 0:
		return cmdutil.UsageError("no command: give one after --, or use --print, --hold or --status")
	case actions > 0 && len(o.Argv) > 0:
		return cmdutil.UsageError("--print, --hold and --status take no command")
	case o.Pin && len(o.Argv) == 0:
		return cmdutil.UsageError("--pin needs a command")
	case o.JSON && actions == 0:
		return cmdutil.UsageError("--json goes with --print, --hold or --status")
	case o.Request.Shared && (c.IsSet("cpus") || c.IsSet("cpu-cap")):
		return cmdutil.UsageError("--shared goes with --llcs (--cpu-cap is always shared)")
	case o.Request.Node < -1:
		return cmdutil.UsageError("--numa-node must be a node number")
	}
	switch {
	case c.IsSet("llcs"):
		o.Request.Count = c.Int("llcs")
	case c.IsSet("cpus"):
		o.Request.Kind, o.Request.Count = hostlock.CPUs, c.Int("cpus")
	case c.IsSet("cpu-cap"):
		n, p, err := hostlock.ParseCPUCap(c.String("cpu-cap"))
		if err != nil {
			return cmdutil.UsageError("%v", err)
		}
		o.Request.Kind, o.Request.Count, o.Request.Percent = hostlock.CPUCap, n, p
	}
	if o.Request.Count < 1 && o.Request.Kind != hostlock.CPUCap {
		return cmdutil.UsageError("--llcs and --cpus need a count of at least 1")
	}
	d, err := hostlock.ParseTimeout(c.String("timeout"))
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	o.Timeout = d
	if _, err := unix.IoctlGetTermios(2, unix.TCGETS); err == nil {
		o.Request.Progress = os.Stderr
	}
	code, err := hostlock.Main(o, os.Stdin, os.Stdout, os.Stderr)
	if code == 0 && err == nil {
		return nil
	}
	if err == nil {
		err = errors.New("")
	}
	return &cmdutil.ExitError{Code: code, Err: err}
}
