// Command ktstr-mkinitramfs: see man/ktstr-mkinitramfs.1.
package main

import (
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/urfave/cli/v2"
)

func main() {
	cmdutil.Main(&cli.App{
		Name:  "ktstr-mkinitramfs",
		Usage: "not implemented yet",
		Action: func(*cli.Context) error {
			return cmdutil.NotImplemented("ktstr-mkinitramfs")
		},
	})
}
