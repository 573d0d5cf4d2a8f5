package gauntlet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

// partial is the name a record file has while it is being written.
func partial(name string) string { return "." + name + ".partial" }

// ErrInterrupted is returned by RunVariant when a signal ended the run:
// no record is written, so --resume runs the variant again.
var ErrInterrupted = errors.New("interrupted: no record written (--resume runs it again)")

// VariantOptions are run-variant's inputs besides the plan.
type VariantOptions struct {
	Version string // ktstr's, for meta.json
	Stderr  io.Writer
	Sigs    <-chan os.Signal // forwarded to ktstr-run; the first ends the run unrecorded
}

// RunVariant runs one variant of the plan in rundir: one ktstr-run with
// its stream, verdict and console going to partial files in the
// variant's directory, renamed into place when it ends, and meta.json
// written last (atomically): a variant with a meta.json is finished. The
// verdict is in the record, not in the error: the error is non-nil only
// when no record could be written. A variant that already has a
// meta.json is not run again.
func RunVariant(ctx context.Context, rundir, name string, o VariantOptions) (*runrecord.Meta, error) {
	if _, err := runrecord.ParseVariant(name); err != nil {
		return nil, err
	}
	plan, err := ReadPlan(rundir)
	if err != nil {
		return nil, err
	}
	v, err := plan.Find(name)
	if err != nil {
		return nil, err
	}
	if m, err := runrecord.ReadMeta(rundir, name); err == nil {
		fmt.Fprintf(o.Stderr, "%s: already recorded (%s)\n", name, m.Verdict)
		return m, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: remove it to run the variant again", err)
	}
	dir := runrecord.VariantDir(rundir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	files := []string{runrecord.StreamFile, runrecord.VerdictFile, runrecord.ConsoleFile}
	// Leftovers of an interrupted try go: the record is all or nothing.
	for _, f := range files {
		os.Remove(filepath.Join(dir, partial(f)))
		os.Remove(filepath.Join(dir, f))
	}
	removeRepro(dir, true)
	host, _ := os.Hostname()
	m := &runrecord.Meta{
		Variant: name, Scheduler: v.Scheduler, SchedulerArgs: v.SchedulerArgs, Scenario: v.Scenario,
		Preset: v.Preset, Topology: v.Topology, Kernel: v.Kernel, Rep: max(v.Rep, 1), KtstrVersion: o.Version, Host: host,
	}
	if m.SchedulerArgs == nil {
		m.SchedulerArgs = []string{}
	}
	m.KernelVersion, _ = kernelVersion(v.Kernel)
	m.KernelSHA256, _ = fileSHA256(v.Kernel)
	if v.Binary != "" {
		m.SchedulerSHA256, _ = fileSHA256(v.Binary)
	}

	console, err := os.Create(filepath.Join(dir, partial(runrecord.ConsoleFile)))
	if err != nil {
		return nil, fmt.Errorf("variant %s: %w", name, err)
	}
	defer console.Close()
	var verdict bytes.Buffer
	args := ktstrRunArgs(v, filepath.Join(dir, partial(runrecord.StreamFile)))
	cmd := exec.Command(plan.KtstrRun, args...)
	cmd.Stdout = &limitedBuffer{b: &verdict, max: 1 << 20}
	cmd.Stderr = console
	fmt.Fprintf(console, "ktstr-gauntlet: %s: %s\n", name, shellJoin(append([]string{plan.KtstrRun}, args...)))
	m.Started = time.Now().UTC()
	if err := cmd.Start(); err != nil {
		m.Ended = time.Now().UTC()
		m.ExitCode, m.Verdict, m.Reason = -1, runrecord.Error, oneLine(fmt.Sprintf("could not start ktstr-run: %v", err))
		fmt.Fprintln(console, "ktstr-gauntlet: "+m.Reason)
		return m, finish(dir, rundir, m, nil, o.Stderr)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	interrupted := false
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case sig := <-o.Sigs:
			interrupted = true
			cmd.Process.Signal(sig)
		case <-ctx.Done():
			interrupted = true
			cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background()
		}
	}
	if !interrupted && interruptedToo(cmd, werr, o.Sigs) {
		interrupted = true
	}
	m.Ended = time.Now().UTC()
	m.WallS = m.Ended.Sub(m.Started).Seconds()
	if interrupted {
		for _, f := range files {
			os.Remove(filepath.Join(dir, partial(f)))
		}
		removeRepro(dir, false)
		return nil, fmt.Errorf("variant %s: %w", name, ErrInterrupted)
	}
	m.ExitCode = exitStatus(cmd, werr)
	m.Verdict = runrecord.VerdictOf(m.ExitCode)
	m.Reason = reasonOf(verdict.Bytes(), filepath.Join(dir, partial(runrecord.ConsoleFile)), m.ExitCode)
	if err := writeReproTimeline(dir); err != nil {
		fmt.Fprintln(console, "ktstr-gauntlet: "+err.Error())
	}
	return m, finish(dir, rundir, m, verdict.Bytes(), o.Stderr)
}

// finish renames the partial files (the auto-repro ones included) into
// place and writes meta.json.
func finish(dir, rundir string, m *runrecord.Meta, verdict []byte, stderr io.Writer) error {
	if len(verdict) > 0 {
		if err := runrecord.WriteFile(filepath.Join(dir, runrecord.VerdictFile), verdict); err != nil {
			return err
		}
	}
	for _, f := range []string{runrecord.StreamFile, runrecord.ConsoleFile} {
		p := filepath.Join(dir, partial(f))
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := os.Rename(p, filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("variant %s: %w", m.Variant, err)
		}
	}
	for _, f := range reproFiles(dir) {
		if _, err := os.Stat(f[0]); err != nil {
			continue
		}
		if err := os.Rename(f[0], filepath.Join(dir, f[1])); err != nil {
			return fmt.Errorf("variant %s: %w", m.Variant, err)
		}
	}
	if err := runrecord.WriteMeta(rundir, m); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%-10s %s (%.1f s)\n", strings.ToUpper(m.Verdict), m.Variant, m.WallS)
	return nil
}

// ktstrRunArgs is the variant's ktstr-run command line.
func ktstrRunArgs(v *Variant, save string) []string {
	a := []string{"--kernel", v.Kernel}
	if v.Binary != "" {
		a = append(a, "--scheduler", v.Binary)
	}
	a = append(a, "--scenario", v.ScenarioArg, "--topology", v.Topology, "--memory", v.Memory,
		"--timeout", v.Timeout, "--vmm", v.VMM, "--save", save, "--json")
	if v.AutoRepro {
		a = append(a, "--auto-repro")
	}
	if v.Append != "" {
		a = append(a, "--append", v.Append)
	}
	if v.Reserve != "" {
		a = append(a, "--reserve", v.Reserve)
	}
	if len(v.SchedulerArgs) > 0 {
		a = append(a, "--")
		a = append(a, v.SchedulerArgs...)
	}
	return a
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// interruptGrace is how long a ktstr-run that failed is given for the
// signal that ended it to reach this process too.
const interruptGrace = 250 * time.Millisecond

// interruptedToo says whether ktstr-run ended because the run was being
// interrupted, although its end was seen before this process's own signal:
// a Ctrl-C (or make or Slurm cancelling the job) signals the whole process
// group, and ktstr-run may exit first. Killed by SIGINT, SIGTERM or SIGHUP
// is an interruption; any other failure waits interruptGrace for a signal
// on sigs. A variant that was interrupted must not be recorded (a failed
// record would keep --resume from running it again).
func interruptedToo(cmd *exec.Cmd, werr error, sigs <-chan os.Signal) bool {
	if cmd.ProcessState == nil {
		return false
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		switch ws.Signal() {
		case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP:
			return true
		}
	}
	if werr == nil || sigs == nil {
		return false
	}
	select {
	case <-sigs:
		return true
	case <-time.After(interruptGrace):
		return false
	}
}

// exitStatus is the command's exit code; -1 when a signal killed it.
func exitStatus(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1
	}
	return cmd.ProcessState.ExitCode()
}

// reasonOf says in one line why the variant ended as it did: a failed
// verdict's reason; else, when ktstr-run did not pass, its own last
// message (which names every tool that did not exit 0) and the first
// monitor violation; else the verdict's reason; else its status.
func reasonOf(verdict []byte, console string, code int) string {
	var rec struct {
		Verdict *struct {
			Result string `json:"result"`
			Reason string `json:"reason"`
		} `json:"verdict"`
	}
	vreason, vresult := "", ""
	if json.Unmarshal(verdict, &rec) == nil && rec.Verdict != nil {
		vreason, vresult = rec.Verdict.Reason, rec.Verdict.Result
	}
	if vresult == "fail" && vreason != "" {
		return oneLine(vreason)
	}
	last, violation := "", ""
	if f, err := os.Open(console); err == nil {
		sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if r, ok := strings.CutPrefix(l, "ktstr-run: "); ok {
				last = r
			} else if r, ok := strings.CutPrefix(l, "violation "); ok && violation == "" {
				violation = r
			}
		}
		f.Close()
	}
	if code != 0 && last != "" {
		if violation != "" {
			last += "; first violation: " + violation
		}
		return oneLine(last)
	}
	if vreason != "" {
		return oneLine(vreason)
	}
	if code == 0 {
		return "PASS"
	}
	if code < 0 {
		return "ktstr-run was killed by a signal"
	}
	return fmt.Sprintf("ktstr-run exited %d", code)
}

// oneLine makes s one line of at most 500 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:497] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if n := l.max - l.b.Len(); n > 0 {
		l.b.Write(p[:min(n, len(p))])
	}
	return len(p), nil
}
