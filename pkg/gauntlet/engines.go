package gauntlet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runEngine runs an engine's command in its own process group, so that
// an interrupt reaches every variant through one SIGTERM to the group
// (each run-variant forwards it to its ktstr-run and writes no record).
func runEngine(ctx context.Context, o Options, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = o.Stderr, o.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return engineErr(name, err)
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-done:
			return engineErr(name, err)
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return engineErr(name, <-done)
		}
	}
}

func engineErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// runMake: make -C RUNDIR -k -j N variants (finish runs after it, in
// this process).
func runMake(ctx context.Context, o Options) error {
	return runEngine(ctx, o, "make", "-C", o.RunDir, "--no-print-directory", "-k", "-j", strconv.Itoa(o.Jobs),
		"GAUNTLET="+shellQuote(o.Self), "variants")
}

// runParallel hands variants.txt to GNU parallel: one job per line, N at
// a time per host; with --sshloginfile on the hosts it lists (the run
// directory and the tools must be at the same paths there: a shared file
// system).
func runParallel(ctx context.Context, o Options, p *Plan) error {
	args := []string{"--will-cite", "--jobs", strconv.Itoa(o.Jobs), "--halt", "never", "--line-buffer"}
	if o.SSHLoginFile != "" {
		f, err := filepath.Abs(o.SSHLoginFile)
		if err != nil {
			return err
		}
		args = append(args, "--sshloginfile", f)
	}
	// One shell word list, quoted here: parallel runs it through a shell
	// (over ssh on a remote host) with {} replaced by a variant name.
	args = append(args, shellQuote(p.Gauntlet)+" run-variant "+shellQuote(o.RunDir)+" {}",
		"::::", filepath.Join(o.RunDir, VariantsFile))
	return runEngine(ctx, o, "parallel", args...)
}

// runSlurm submits slurm.sh as a job array and waits for it to leave the
// queue, polling squeue; an interrupt cancels it with scancel.
func runSlurm(ctx context.Context, o Options) error {
	if err := os.MkdirAll(filepath.Join(o.RunDir, SlurmOutDir), 0o755); err != nil {
		return err
	}
	args := append([]string{"--parsable", "--chdir", o.RunDir}, o.SbatchArgs...)
	args = append(args, filepath.Join(o.RunDir, SlurmFile))
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "sbatch", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sbatch: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	job, _, _ := strings.Cut(strings.TrimSpace(out.String()), ";")
	if _, err := strconv.Atoi(job); err != nil {
		return fmt.Errorf("sbatch printed %q, not a job id", out.String())
	}
	fmt.Fprintf(o.Stderr, "ktstr-gauntlet: Slurm job %s submitted\n", job)
	poll := o.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	last := ""
	for {
		select {
		case <-ctx.Done():
			exec.Command("scancel", job).Run()
			return fmt.Errorf("interrupted: cancelled Slurm job %s", job)
		case <-time.After(poll):
		}
		var q, qe bytes.Buffer
		c := exec.Command("squeue", "-h", "-j", job, "-o", "%T")
		c.Stdout, c.Stderr = &q, &qe
		err := c.Run()
		states := strings.Fields(q.String())
		if err != nil {
			// A finished job leaves squeue's memory (MinJobAge): "Invalid
			// job id" then means done.
			if strings.Contains(qe.String(), "Invalid job id") {
				return nil
			}
			return fmt.Errorf("squeue: %v: %s", err, strings.TrimSpace(qe.String()))
		}
		if len(states) == 0 {
			return nil
		}
		if s := summarizeStates(states); s != last {
			fmt.Fprintf(o.Stderr, "ktstr-gauntlet: Slurm job %s: %s\n", job, s)
			last = s
		}
	}
}

func summarizeStates(states []string) string {
	n := map[string]int{}
	var order []string
	for _, s := range states {
		if n[s] == 0 {
			order = append(order, s)
		}
		n[s]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", n[s], strings.ToLower(s)))
	}
	return strings.Join(parts, ", ")
}
