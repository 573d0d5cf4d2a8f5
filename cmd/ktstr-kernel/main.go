// Command ktstr-kernel: see man/ktstr-kernel.1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/initramfs"
	"github.com/ktstr-go/ktstr/pkg/kernel"
	"github.com/ktstr-go/ktstr/pkg/term"
	"github.com/urfave/cli/v2"
)

// Exit codes (man/ktstr-kernel.1).
const (
	exitUnusable = 1 // check: the kernel lacks what ktstr needs; resolve: nothing found; build: make or the configuration failed
	exitBad      = 2 // usage errors, unreadable kernel or configuration, cache errors
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	cacheFlag := &cli.StringFlag{Name: "cache-dir", EnvVars: []string{"KTSTR_KERNEL_CACHE_DIR"}, Usage: "kernel cache `DIR` (default $XDG_CACHE_HOME/ktstr/kernels)"}
	return &cli.App{
		Name:  "ktstr-kernel",
		Usage: "check, build, cache and find kernels for ktstr guests",
		Flags: []cli.Flag{cacheFlag},
		Commands: []*cli.Command{
			{
				Name: "check", Usage: "say what ktstr needs from a kernel's configuration and what is missing",
				ArgsUsage: "KERNEL",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "baseline", Usage: "judge for EEVDF baselines only (sched_ext items do not make it unusable)"},
					&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object"},
				},
				Action: check,
			},
			{
				Name: "build", Usage: "configure and build a kernel source tree with ktstr's fragment and cache the result",
				ArgsUsage: "SRC",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "make -j `N` (default: every CPU)"},
					&cli.StringSliceFlag{Name: "fragment", Usage: "a further config fragment `FILE`, applied after ktstr's; repeatable"},
					&cli.BoolFlag{Name: "keep-config", Usage: "start from the tree's .config instead of defconfig + kvm_guest.config"},
					&cli.BoolFlag{Name: "config-only", Usage: "configure and check only; print the .config's path"},
					&cli.BoolFlag{Name: "force", Usage: "build even if the configuration is unusable"},
					&cli.BoolFlag{Name: "baseline", Usage: "judge the configuration for EEVDF baselines only"},
				},
				Action: build,
			},
			{
				Name: "resolve", Usage: "print the bzImage a spec names (path, source tree, cache key or version; empty: the default places)",
				ArgsUsage: "[SPEC]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also print vmlinux, System.map and config, one \"NAME PATH\" line each"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
				},
				Action: resolve,
			},
			{
				Name: "list", Usage: "list cached kernels, most recently used first",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "one JSON object per entry"}},
				Action: list,
			},
			{
				Name: "gc", Usage: "remove least recently used cached kernels (never one in use)",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "keep", Value: -1, Usage: "keep at most `N` kernels"},
					&cli.StringFlag{Name: "max-size", Usage: "keep at most `SIZE` bytes (K, M, G suffixes)"},
				},
				Action: gc,
			},
			{
				Name: "fragment", Usage: "print ktstr's kernel configuration fragment",
				Action: func(c *cli.Context) error {
					out := &checkedWriter{w: os.Stdout}
					out.Write(kernel.Fragment())
					return out.result(nil)
				},
			},
		},
	}
}

// stdout remembers the first failed write to standard output, so that a
// full disk or a closed pipe is an error (exit 2), not a silent success.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.err = err
	return n, err
}

// result reports a failed write to standard output, or returns err.
func (c *checkedWriter) result(err error) error {
	if err == nil && c.err != nil {
		return cmdutil.Exitf(exitBad, "write standard output: %v", c.err)
	}
	return err
}

func cacheDir(c *cli.Context) (string, error) {
	if d := c.String("cache-dir"); d != "" {
		return d, nil
	}
	d, err := kernel.DefaultCacheDir()
	return d, cmdutil.Exit(exitBad, err)
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", cmdutil.UsageError("give one %s (see --help)", what)
	}
	return c.Args().First(), nil
}

func check(c *cli.Context) error {
	arg, err := oneArg(c, "KERNEL")
	if err != nil {
		return err
	}
	path := arg
	if st, err := os.Stat(arg); err != nil || st.IsDir() {
		dir, err := cacheDir(c)
		if err != nil {
			return err
		}
		k, release, err := kernel.Resolve(arg, kernel.ResolveOptions{CacheDir: dir})
		defer release()
		switch dotconfig := filepath.Join(arg, ".config"); {
		case err == nil:
			path = k.BzImage
		case errors.Is(err, kernel.ErrNotFound) && isFile(dotconfig):
			path = dotconfig // a configured tree not built yet
		default:
			return cmdutil.Exit(exitBad, err)
		}
	}
	cfg, source, err := kernel.LoadConfig(path)
	if err != nil {
		return cmdutil.Exit(exitBad, err)
	}
	r := kernel.Check(cfg, source, c.Bool("baseline"))
	out := &checkedWriter{w: os.Stdout}
	if c.Bool("json") {
		json.NewEncoder(out).Encode(r)
	} else {
		r.Print(out)
	}
	if !r.Usable {
		return out.result(cmdutil.Exitf(exitUnusable, ""))
	}
	return out.result(nil)
}

func build(c *cli.Context) error {
	src, err := oneArg(c, "SRC")
	if err != nil {
		return err
	}
	if c.Int("jobs") < 0 {
		return cmdutil.UsageError("--jobs must not be negative")
	}
	if st, err := os.Stat(src); err != nil || !st.IsDir() {
		return cmdutil.UsageError("SRC %s is not a directory", src)
	}
	dir, err := cacheDir(c)
	if err != nil {
		return err
	}
	cache, err := kernel.OpenCache(dir)
	if err != nil {
		return cmdutil.Exit(exitBad, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := kernel.Build(ctx, kernel.BuildOptions{
		Src: src, Jobs: c.Int("jobs"), Fragments: c.StringSlice("fragment"),
		KeepConfig: c.Bool("keep-config"), ConfigOnly: c.Bool("config-only"),
		Force: c.Bool("force"), Baseline: c.Bool("baseline"),
		Cache: cache, Log: os.Stderr, Terminal: term.IsTerminal(int(os.Stderr.Fd())),
	})
	if err != nil {
		return cmdutil.Exit(exitUnusable, err)
	}
	out := &checkedWriter{w: os.Stdout}
	if c.Bool("config-only") {
		fmt.Fprintln(out, res.Report.Source)
		if !res.Report.Usable {
			return out.result(cmdutil.Exitf(exitUnusable, ""))
		}
		return out.result(nil)
	}
	fmt.Fprintln(out, res.Entry.Dir)
	return out.result(nil)
}

func resolve(c *cli.Context) error {
	if c.NArg() > 1 {
		return cmdutil.UsageError("give at most one SPEC (see --help)")
	}
	dir, err := cacheDir(c)
	if err != nil {
		return err
	}
	k, release, err := kernel.Resolve(c.Args().First(), kernel.ResolveOptions{CacheDir: dir})
	defer release()
	if errors.Is(err, kernel.ErrNotFound) {
		return cmdutil.Exit(exitUnusable, err)
	}
	if err != nil {
		return cmdutil.Exit(exitBad, err)
	}
	out := &checkedWriter{w: os.Stdout}
	if c.Bool("json") {
		json.NewEncoder(out).Encode(k)
	} else {
		kernel.PrintKernel(out, k, c.Bool("all"))
	}
	return out.result(nil)
}

func list(c *cli.Context) error {
	dir, err := cacheDir(c)
	if err != nil {
		return err
	}
	entries, err := (&kernel.Cache{Dir: dir}).List()
	if err != nil {
		return cmdutil.Exit(exitBad, err)
	}
	out := &checkedWriter{w: os.Stdout}
	if c.Bool("json") {
		kernel.PrintListJSON(out, entries)
	} else {
		kernel.PrintList(out, entries)
	}
	return out.result(nil)
}

func gc(c *cli.Context) error {
	keep := c.Int("keep")
	maxSize := int64(-1)
	if s := c.String("max-size"); s != "" {
		var err error
		if maxSize, err = initramfs.ParseSize(s); err != nil {
			return cmdutil.UsageError("--max-size: %v", err)
		}
	}
	if keep < 0 && maxSize < 0 {
		return cmdutil.UsageError("gc needs --keep N and/or --max-size SIZE")
	}
	dir, err := cacheDir(c)
	if err != nil {
		return err
	}
	r, err := (&kernel.Cache{Dir: dir}).GC(keep, maxSize)
	if err != nil {
		return cmdutil.Exit(exitBad, err)
	}
	out := &checkedWriter{w: os.Stdout}
	for _, k := range r.Removed {
		fmt.Fprintf(out, "removed %s\n", k)
	}
	for _, k := range r.SkippedInUse {
		fmt.Fprintf(out, "in use, kept %s\n", k)
	}
	fmt.Fprintf(out, "kept %d kernels (%s), freed %s\n", r.Kept, kernel.HumanSize(r.KeptBytes), kernel.HumanSize(r.FreedBytes))
	return out.result(nil)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
