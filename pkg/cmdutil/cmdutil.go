package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is the ktstr release, set at link time with
// -ldflags "-X github.com/ktstr-go/ktstr/pkg/cmdutil.Version=...".
var Version = "0.1.0-dev"

// Exit codes shared by every tool. Tools document further codes of their own.
const (
	ExitOK             = 0
	ExitUsage          = 2 // bad arguments or flags; also "not implemented yet"
	ExitNotImplemented = 2
)

// ExitError carries an exit code with an error message.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err with an exit code.
func Exit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// Exitf formats an error with an exit code.
func Exitf(code int, format string, a ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, a...)}
}

// Quiet exits with code and prints nothing: the tool has already said
// why (e.g. a verdict line on standard output). Quiet(0) is nil.
func Quiet(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code, Err: errors.New("")}
}

// UsageError is returned for bad flags or arguments (exit 2).
func UsageError(format string, a ...any) error { return Exitf(ExitUsage, format, a...) }

// NotImplemented is what a tool whose issue has not landed returns.
func NotImplemented(tool string) error {
	return Exitf(ExitNotImplemented, "%s: not implemented yet", tool)
}

// Main runs app with os.Args and exits with the code its error carries:
// ExitError's code, 2 for flag parsing errors, 1 for any other error.
// The error is printed to stderr as one line: "tool: message".
//
// Options may follow operands (`ktstr-decode run.ktstr --summary`): see
// Intersperse. Only --version prints the version; -v is not an alias of
// it, because on a tool whose standard output is data
// (`blob=$(ktstr-mkinitramfs -v ...)`) a version string in its place
// would pass for a result.
func Main(app *cli.App) {
	os.Exit(Run(app, os.Args, os.Stderr))
}

// MainCommand is Main for a tool whose operands are a command to run
// (ktstr-hostlock): options end at the first operand, so the command's
// own options stay the command's.
func MainCommand(app *cli.App) {
	os.Exit(run(app, os.Args, os.Stderr, false))
}

// Run is Main without the os.Exit, for tests.
func Run(app *cli.App, args []string, stderr io.Writer) int {
	return run(app, args, stderr, true)
}

// runCommand is MainCommand without the os.Exit, for tests.
func runCommand(app *cli.App, args []string, stderr io.Writer) int {
	return run(app, args, stderr, false)
}

func run(app *cli.App, args []string, stderr io.Writer, intersperse bool) int {
	app.Version = Version
	app.HideHelpCommand = true
	addVersionFlag(app)
	if intersperse && len(app.Commands) == 0 {
		args = Intersperse(app, args)
	}
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return UsageError("%v (see --help)", err)
	}
	for _, cmd := range app.Commands {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = app.OnUsageError
		}
	}
	err := app.Run(args)
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	code := 1
	if errors.As(err, &ee) {
		code = ee.Code
	}
	msg := err.Error()
	if msg != "" {
		fmt.Fprintf(stderr, "%s: %s\n", app.Name, msg)
	}
	return code
}

// addVersionFlag replaces urfave/cli's --version/-v with --version alone
// (see Main). urfave/cli's own flag is hidden rather than changed: it is a
// package variable shared by every app.
func addVersionFlag(app *cli.App) {
	app.HideVersion = true
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			if n == "version" {
				return
			}
		}
	}
	app.Flags = append(app.Flags, &cli.BoolFlag{Name: "version", Usage: "print the version and exit"})
	action := app.Action
	app.Action = func(c *cli.Context) error {
		if c.Bool("version") {
			_, err := fmt.Fprintf(c.App.Writer, "%s version %s\n", c.App.Name, c.App.Version)
			return err
		}
		if action == nil {
			return nil
		}
		return action(c)
	}
}

// Intersperse reorders args (args[0] is the program name) so that options
// given after operands come first, as urfave/cli, which stops parsing
// options at the first operand, needs: `tool FILE --summary` becomes
// `tool --summary -- FILE`. Everything after a "--" stays an operand, in
// order, as does "-" (standard input). An option that takes a value
// (every flag that is not a BoolFlag) keeps the word after it. The operands
// are put after a "--", so one that begins with '-' is never read as an
// option.
func Intersperse(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range app.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var opts, operands []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			operands = append(operands, rest[i+1:]...)
			i = len(rest)
		case len(a) > 1 && a[0] == '-':
			opts = append(opts, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if takesValue[name] && i+1 < len(rest) {
				i++
				opts = append(opts, rest[i])
			}
		default:
			operands = append(operands, a)
		}
	}
	out := append([]string{args[0]}, opts...)
	if len(operands) > 0 || containsDashDash(rest) {
		out = append(out, "--")
		out = append(out, operands...)
	}
	return out
}

func containsDashDash(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return true
		}
	}
	return false
}
