// Command ktstr-init: the guest init; see man/ktstr-init.1.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/guest"
	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/urfave/cli/v2"
)

func main() {
	if os.Getpid() == 1 {
		guest.RunInit(cmdutil.Version)
	}
	if len(os.Args) == 2 && os.Args[1] == guest.LastGaspArg {
		os.Exit(guest.RunLastGasp())
	}
	if len(os.Args) > 1 && os.Args[1] == guest.WorkerArg {
		os.Exit(guest.RunWorker(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == guest.StallWatchArg {
		os.Exit(guest.RunStallWatch(os.Args[2:]))
	}
	cmdutil.Main(&cli.App{
		Name:      "ktstr-init",
		Usage:     "the ktstr guest init (runs as PID 1 inside a guest); on the host it lists and checks scenarios",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "list-scenarios", Usage: "print the catalog's scenario names"},
			&cli.StringFlag{Name: "check-scenario", Usage: "validate a scenario `NAME|PATH` and print it", Aliases: []string{"c"}},
		},
		Action: func(c *cli.Context) error {
			switch {
			case c.Bool("list-scenarios"):
				for _, n := range scenario.Names() {
					s, err := scenario.Lookup(n)
					if err != nil {
						return err
					}
					fmt.Printf("%s\t%s\n", n, s.Description)
				}
				return nil
			case c.String("check-scenario") != "":
				s, _, err := scenario.Load(c.String("check-scenario"))
				if err != nil {
					return cmdutil.Exit(1, err)
				}
				b, err := scenario.Marshal(s)
				if err != nil {
					return err
				}
				_, err = os.Stdout.Write(b)
				return err
			}
			return cmdutil.UsageError("ktstr-init runs as PID 1 inside a guest (pack it with ktstr-mkinitramfs); on the host use --list-scenarios or --check-scenario (%s)", strings.Join(scenario.Names(), ", "))
		},
	})
}
