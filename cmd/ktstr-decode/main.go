// Command ktstr-decode: see man/ktstr-decode.1.
package main

import (
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/urfave/cli/v2"
)

func main() {
	cmdutil.Main(&cli.App{
		Name:  "ktstr-decode",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cmdutil.NotImplemented("ktstr-decode")
		},
	})
}
