package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"os"

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
func Main(app *cli.App) {
	os.Exit(Run(app, os.Args, os.Stderr))
}

// Run is Main without the os.Exit, for tests.
func Run(app *cli.App, args []string, stderr io.Writer) int {
	app.Version = Version
	app.HideHelpCommand = true
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return UsageError("%v (see --help)", err)
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
