// Command ktstr-monitor: see man/ktstr-monitor.1.
package main

import (
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/urfave/cli/v2"
)

func main() {
	cmdutil.Main(&cli.App{
		Name:  "ktstr-monitor",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cmdutil.NotImplemented("ktstr-monitor")
		},
	})
}
