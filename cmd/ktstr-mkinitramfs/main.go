// Command ktstr-mkinitramfs: see man/ktstr-mkinitramfs.1.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/initramfs"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// Exit codes beyond cmdutil's (see the man page).
const (
	exitFailure = 1 // build, cache or I/O failure
	exitInput   = 3 // an input cannot be used
)

func main() {
	cmdutil.Main(&cli.App{
		Name:      "ktstr-mkinitramfs",
		Usage:     "build a cached, reproducible initramfs and print its path",
		ArgsUsage: "[-- SCHEDULER_ARGS...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "init", Usage: "host `PATH` of the binary packed as /init (default: $KTSTR_INIT, else ktstr-init next to this program)"},
			&cli.StringFlag{Name: "scheduler", Usage: "scheduler binary `PATH`; its arguments follow --"},
			&cli.StringSliceFlag{Name: "include", Usage: "pack a host file or directory: `HOST[:ARCHIVE_PATH]` (repeatable)"},
			&cli.StringFlag{Name: "busybox", Usage: "pack busybox `PATH` as /bin/busybox with its applet links"},
			&cli.StringFlag{Name: "scenario", Usage: "scenario to pack: a catalog `NAME` (ktstr-init --list-scenarios) or a FILE"},
			&cli.StringSliceFlag{Name: "env", Usage: "`KEY=VALUE` for the scheduler's and payloads' environment (repeatable)"},
			&cli.DurationFlag{Name: "attach-timeout", Usage: "how long the guest waits for the scheduler to attach, as a `DURATION` like 20s (0: the guest's default)"},
			&cli.StringFlag{Name: "compress", Value: string(initramfs.DefaultCompression), Usage: "compression `ALGO`: none, lz4 (legacy format), zstd or gzip"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "also write the blob to `FILE` and print that path"},
			&cli.BoolFlag{Name: "no-cache", Usage: "build without reading or writing the cache"},
			&cli.BoolFlag{Name: "parts", Usage: "print the base part's and the run part's paths (two lines) instead of their concatenation"},
			&cli.BoolFlag{Name: "print-key", Usage: "print the blob's cache key and exit without building"},
			&cli.BoolFlag{Name: "verify", Usage: "check the full hash of every cached blob used"},
			&cli.BoolFlag{Name: "list", Usage: "list cached blobs with size and age"},
			&cli.BoolFlag{Name: "gc", Usage: "remove least recently used blobs (with --keep and/or --max-size)"},
			&cli.IntFlag{Name: "keep", Value: -1, Usage: "with --gc: keep at most `N` blobs"},
			&cli.StringFlag{Name: "max-size", Usage: "with --gc: keep at most `SIZE` bytes of blobs (K, M, G suffixes)"},
			&cli.BoolFlag{Name: "verbose", Usage: "log cache hits and builds on stderr"},
		},
		Action: run,
	})
}

func run(c *cli.Context) error {
	if c.Bool("list") || c.Bool("gc") {
		return manage(c)
	}
	if c.IsSet("keep") || c.IsSet("max-size") {
		return cmdutil.UsageError("--keep and --max-size only go with --gc")
	}
	comp, err := initramfs.ParseCompression(c.String("compress"))
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	if c.Bool("no-cache") && c.Bool("parts") {
		return cmdutil.UsageError("--parts needs the cache; drop --no-cache")
	}
	if o := c.String("output"); o != "" {
		// Before any work: -o /dev/null must fail at once, not replace
		// the device node after a build.
		if _, err := initramfs.CheckOutputPath(o); err != nil {
			return cmdutil.UsageError("-o: %v", err)
		}
	}
	spec := &initramfs.Spec{
		Scheduler:       c.String("scheduler"),
		SchedulerArgs:   c.Args().Slice(),
		Busybox:         c.String("busybox"),
		Compression:     comp,
		AttachTimeoutMS: int(c.Duration("attach-timeout") / time.Millisecond),
	}
	if spec.Scheduler == "" && len(spec.SchedulerArgs) > 0 {
		return cmdutil.UsageError("arguments %q given without --scheduler", spec.SchedulerArgs)
	}
	for _, s := range c.StringSlice("include") {
		inc, err := initramfs.ParseInclude(s)
		if err != nil {
			return cmdutil.UsageError("%v", err)
		}
		spec.Includes = append(spec.Includes, inc)
	}
	for _, kv := range c.StringSlice("env") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cmdutil.UsageError("--env %q: use KEY=VALUE", kv)
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	if spec.Init, err = initramfs.FindInit(c.String("init")); err != nil {
		return classify(err)
	}
	if s := c.String("scenario"); s != "" {
		if spec.Scenario, spec.ScenarioName, err = initramfs.LoadScenario(s); err != nil {
			return classify(err)
		}
	}

	b := &initramfs.Builder{Version: cmdutil.Version, Verify: c.Bool("verify")}
	if c.Bool("verbose") {
		b.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "ktstr-mkinitramfs: "+f+"\n", a...) }
	}
	if isTerminal(os.Stderr) {
		b.Progress = initramfs.NewProgress(os.Stderr)
	}
	if !c.Bool("no-cache") {
		dir, err := initramfs.DefaultCacheDir()
		if err != nil {
			return classify(err)
		}
		if b.Cache, err = initramfs.OpenCache(dir); err != nil {
			return classify(err)
		}
	}
	out := c.App.Writer
	switch {
	case c.Bool("print-key"):
		key, err := b.Key(spec)
		if err != nil {
			return classify(err)
		}
		_, err = fmt.Fprintln(out, key)
		return err
	case c.Bool("no-cache"):
		return buildUncached(c, b, spec)
	case c.Bool("parts"):
		r, err := b.Parts(spec)
		if err != nil {
			return classify(err)
		}
		_, err = fmt.Fprintf(out, "%s\n%s\n", r.BasePath, r.RunPath)
		return err
	}
	r, err := b.Build(spec)
	if err != nil {
		return classify(err)
	}
	path := r.Path
	if o := c.String("output"); o != "" {
		if err := initramfs.CopyAtomic(r.Path, o); err != nil {
			return classify(err)
		}
		path = o
	}
	_, err = fmt.Fprintln(out, path)
	return err
}

// buildUncached writes the blob to --output, or to a new file under
// $TMPDIR that the caller then owns; either way through a temporary file
// and a rename (initramfs.WriteOutput), so a failed or killed build never
// leaves a partial blob under the printed name nor alters an old one.
func buildUncached(c *cli.Context, b *initramfs.Builder, spec *initramfs.Spec) error {
	o := c.String("output")
	reserved := false
	if o == "" {
		// Sweep what killed uncached builds left in $TMPDIR, then reserve
		// a unique name to rename the blob onto.
		initramfs.SweepTemps(os.TempDir(), ".ktstr-initramfs-")
		f, err := os.CreateTemp("", "ktstr-initramfs-*"+spec.Compression.Ext())
		if err != nil {
			return cmdutil.Exitf(exitFailure, "create output: %v", err)
		}
		f.Close()
		o, reserved = f.Name(), true
	}
	err := initramfs.WriteOutput(o, func(w io.Writer) error {
		_, err := b.WriteTo(w, spec)
		return err
	})
	if err != nil {
		if reserved {
			os.Remove(o)
		}
		return classify(err)
	}
	_, err = fmt.Fprintln(c.App.Writer, o)
	return err
}

func manage(c *cli.Context) error {
	if c.Bool("list") && c.Bool("gc") {
		return cmdutil.UsageError("give --list or --gc, not both")
	}
	dir, err := initramfs.DefaultCacheDir()
	if err != nil {
		return classify(err)
	}
	cache := &initramfs.Cache{Dir: dir}
	if c.Bool("list") {
		blobs, err := cache.List()
		if err != nil {
			return classify(err)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SIZE\tAGE\tUSED\tKIND\tPATH")
		now := time.Now()
		for _, bl := range blobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", humanSize(bl.Size), humanAge(now.Sub(bl.Created)), humanAge(now.Sub(bl.LastUsed)), bl.Kind, bl.Path)
		}
		return tw.Flush()
	}
	keep := c.Int("keep")
	var maxSize int64 = -1
	if s := c.String("max-size"); s != "" {
		if maxSize, err = initramfs.ParseSize(s); err != nil {
			return cmdutil.UsageError("--max-size: %v", err)
		}
	}
	if keep < 0 && maxSize < 0 {
		return cmdutil.UsageError("--gc needs --keep N and/or --max-size SIZE")
	}
	r, err := cache.GC(keep, maxSize)
	if err != nil {
		return classify(err)
	}
	fmt.Fprintf(os.Stderr, "ktstr-mkinitramfs: removed %d blobs (%s), kept %d (%s), %d in use skipped\n",
		r.Removed, humanSize(r.FreedBytes), r.Kept, humanSize(r.KeptBytes), r.SkippedInUse)
	return nil
}

func classify(err error) error {
	var ie *initramfs.InputError
	if errors.As(err, &ie) {
		return cmdutil.Exit(exitInput, err)
	}
	var oe *initramfs.OutputError
	if errors.As(err, &oe) {
		return cmdutil.Exit(cmdutil.ExitUsage, err)
	}
	return cmdutil.Exit(exitFailure, err)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func humanAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
