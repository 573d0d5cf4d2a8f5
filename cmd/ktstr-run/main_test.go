package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/cmdutil"
	"github.com/ktstr-go/ktstr/pkg/pipeline"
)

// TestManPage: man/ktstr-run.1 documents every flag and exit status.
func TestManPage(t *testing.T) {
	b, err := os.ReadFile("../../man/ktstr-run.1")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	for _, f := range app().Flags {
		for _, n := range f.Names() {
			if len(n) > 1 && !strings.Contains(man, `\-\-`+strings.ReplaceAll(n, "-", `\-`)) {
				t.Errorf("flag --%s is not in the man page", n)
			}
		}
	}
	for _, c := range []int{pipeline.ExitPass, pipeline.ExitFail, pipeline.ExitUsage, pipeline.ExitNoVerdict, pipeline.ExitTool} {
		if !strings.Contains(man, fmt.Sprintf(".TP\n.B %d\n", c)) {
			t.Errorf("exit status %d is not in the man page", c)
		}
	}
	if !strings.Contains(man, ".B KTSTR_KERNEL") {
		t.Error("KTSTR_KERNEL is not in the man page")
	}
}

// TestArgs runs the command line through cmdutil like main does: usage
// errors exit 2 with one line; --dry-run prints the script.
func TestArgs(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "bzImage")
	sched := filepath.Join(dir, "scx_x")
	os.WriteFile(k, []byte("k"), 0o644)
	os.WriteFile(sched, []byte("s"), 0o755)
	// The tools: fake executables beside the test binary are not there,
	// so put some on PATH.
	bin := t.TempDir()
	for _, n := range []string{pipeline.Mkinitramfs, pipeline.Hostlock, pipeline.Boot, pipeline.Monitor, pipeline.Decode} {
		os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("KTSTR_KERNEL", "")
	sysfs := t.TempDir()
	if _, err := fakesys.Write(sysfs, fakesys.Spec{Nodes: 1, LLCs: 4, Cores: 2, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"--scheduler", sched, "--kernel", filepath.Join(dir, "no-such-kernel")}, 2, "", "no-such-kernel"},
		{[]string{"--kernel", k, "--topology", "0n"}, 2, "", "--topology"},
		{[]string{"--kernel", k, "--", "-t", "2"}, 2, "", "need --scheduler"},
		{[]string{"--kernel", k, "--timeout", "soon"}, 2, "", "timeout"},
		{[]string{"--kernel", filepath.Join(dir, "missing")}, 2, "", "does not exist"},
		{[]string{"--kernel", k, "--scheduler", sched, "--scenario", "steady", "--dry-run", "--", "-t", "2"}, 0,
			"--scheduler " + sched + " --scenario steady -- -t 2) || exit 4", ""},
		{[]string{"--kernel", k, "-n", "--topology", "1n1l1c1t"}, 0, "--cpus 1 -- ", ""},
		// --reserve llcs on a fake host of 4 LLCs of 2 CPUs: 3 vCPUs need 2.
		{[]string{"--kernel", k, "-n", "--topology", "1n1l3c1t", "--reserve", "llcs", "--sysfs-root", sysfs}, 0, "--sysfs-root " + sysfs + " --llcs 2 -- ", ""},
		{[]string{"--kernel", k, "-n", "--topology", "2n4l1c2t", "--reserve", "llcs", "--sysfs-root", sysfs}, 0, "--llcs 4 -- ", ""},
		{[]string{"--kernel", k, "-n", "--topology", "1n1l9c1t", "--reserve", "llcs", "--sysfs-root", sysfs}, 2, "",
			"--reserve llcs: the 9 vCPUs of --topology 1n1l9c1t: 9 CPUs do not fit in this host's LLCs: its 4 LLC(s) hold 8 CPU(s) this process may use (0-7); give a smaller --topology, or --reserve cpus to overcommit the host"},
		{[]string{"--kernel", k, "-n", "--topology", "1n1l9c1t", "--reserve", "cpus", "--sysfs-root", sysfs}, 0, "--cpus ", ""},
		{[]string{"--kernel", k, "-n", "--reserve", "llc"}, 2, "", `--reserve "llc": want cpus or llcs`},
		{[]string{"--kernel", k, "-n", "--reserve", "llcs", "--sysfs-root", dir}, 4, "", "--reserve llcs: reading the host topology"},
	} {
		var stderr bytes.Buffer
		stdout := captureStdout(t, func() {
			if code := cmdutil.Run(app(), append([]string{"ktstr-run"}, c.args...), &stderr); code != c.code {
				t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, stderr.String())
			}
		})
		if !strings.Contains(stdout, c.out) || !strings.Contains(stderr.String(), c.err) {
			t.Errorf("%v: stdout %q stderr %q; want %q / %q", c.args, stdout, stderr.String(), c.out, c.err)
		}
		if c.code != 0 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%v: usage error is not one line: %q", c.args, stderr.String())
		}
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		b.ReadFrom(r)
		done <- b.String()
	}()
	f()
	os.Stdout = old
	w.Close()
	return <-done
}
