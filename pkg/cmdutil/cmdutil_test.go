package cmdutil

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp(got *[]string, flags map[string]string) *cli.App {
	return &cli.App{
		Name: "tool",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "summary"},
			&cli.BoolFlag{Name: "json", Aliases: []string{"j"}},
			&cli.StringSliceFlag{Name: "type", Aliases: []string{"t"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}},
		},
		Action: func(c *cli.Context) error {
			*got = c.Args().Slice()
			for _, n := range []string{"summary", "json"} {
				if c.Bool(n) {
					flags[n] = "true"
				}
			}
			flags["type"] = strings.Join(c.StringSlice("type"), ",")
			flags["output"] = c.String("output")
			return nil
		},
	}
}

func TestIntersperse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		operands []string
		flags    map[string]string
	}{
		{[]string{"run.ktstr", "--summary"}, []string{"run.ktstr"}, map[string]string{"summary": "true"}},
		{[]string{"a", "-t", "log", "b", "--json"}, []string{"a", "b"}, map[string]string{"json": "true", "type": "log"}},
		{[]string{"a", "--type=log", "-o", "out", "b"}, []string{"a", "b"}, map[string]string{"type": "log", "output": "out"}},
		{[]string{"-", "--json"}, []string{"-"}, map[string]string{"json": "true"}},
		// After "--" everything is an operand, even what looks like an option.
		{[]string{"a", "--", "--summary", "-j"}, []string{"a", "--summary", "-j"}, map[string]string{}},
		{[]string{"--", "-x"}, []string{"-x"}, map[string]string{}},
		{[]string{"--summary"}, nil, map[string]string{"summary": "true"}},
		// An option's value that looks like an operand stays its value.
		{[]string{"-o", "file", "x"}, []string{"x"}, map[string]string{"output": "file"}},
	} {
		var got []string
		flags := map[string]string{}
		var stderr bytes.Buffer
		if code := Run(testApp(&got, flags), append([]string{"tool"}, tc.args...), &stderr); code != 0 {
			t.Errorf("%v: exit %d %s", tc.args, code, stderr.String())
			continue
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, tc.operands) {
			t.Errorf("%v: operands %q, want %q", tc.args, got, tc.operands)
		}
		for k, v := range tc.flags {
			if flags[k] != v {
				t.Errorf("%v: --%s = %q, want %q", tc.args, k, flags[k], v)
			}
		}
	}
}

// runCommand (ktstr-hostlock) keeps urfave/cli's rule: options end at the
// first operand, which begins a command with options of its own.
func TestRunCommandKeepsCommandOptions(t *testing.T) {
	var got []string
	flags := map[string]string{}
	var stderr bytes.Buffer
	if code := runCommand(testApp(&got, flags), []string{"tool", "--json", "make", "--summary", "-j4"}, &stderr); code != 0 {
		t.Fatalf("exit %d %s", code, stderr.String())
	}
	if !reflect.DeepEqual(got, []string{"make", "--summary", "-j4"}) || flags["summary"] != "" {
		t.Fatalf("command %q, flags %v", got, flags)
	}
}

// Only --version prints the version; -v is an unknown flag (exit 2), so
// `x=$(tool -v ...)` cannot take a version string for data.
func TestVersionFlag(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--version"}, 0, "tool version " + Version + "\n", ""},
		{[]string{"-v"}, 2, "", "flag provided but not defined: -v"},
		{[]string{"-v", "--summary"}, 2, "", "not defined: -v"},
	} {
		var got []string
		var stdout, stderr bytes.Buffer
		app := testApp(&got, map[string]string{})
		app.Writer = &stdout
		code := Run(app, append([]string{"tool"}, tc.args...), &stderr)
		if code != tc.code || stdout.String() != tc.stdout && tc.stdout != "" || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%v: exit %d stdout %q stderr %q; want %d %q %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
		if tc.code != 0 && stdout.Len() != 0 {
			t.Errorf("%v: printed %q on stdout", tc.args, stdout.String())
		}
	}
}
