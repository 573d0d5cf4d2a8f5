package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSlurm starts a one-node Slurm cluster of the test's own: munged
// with a fresh key on a private socket, slurmctld and slurmd on free
// loopback ports, state in a temporary directory. It returns the
// slurm.conf path (for $SLURM_CONF). Everything stops at cleanup.
func startSlurm(t *testing.T) string {
	t.Helper()
	needTools(t, "slurm-wlm munge", "/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "sbatch", "squeue", "sinfo")
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the Slurm test starts munged, slurmctld and slurmd as root (SlurmUser=root)")
	}
	d, err := os.MkdirTemp("", "gauntlet-slurm")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o711) // munged wants its socket's directory searchable
	t.Cleanup(func() { os.RemoveAll(d) })
	for _, sub := range []string{"state", "spool"} {
		os.Mkdir(filepath.Join(d, sub), 0o755)
	}
	key := make([]byte, 1024)
	if f, err := os.Open("/dev/urandom"); err == nil {
		f.Read(key)
		f.Close()
	}
	os.WriteFile(filepath.Join(d, "munge.key"), key, 0o400)
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	conf := filepath.Join(d, "slurm.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ClusterName=ktstrtest
SlurmctldHost=%[2]s(127.0.0.1)
SlurmctldPort=%[3]d
SlurmdPort=%[4]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[1]s/munge.sock
StateSaveLocation=%[1]s/state
SlurmdSpoolDir=%[1]s/spool
SlurmctldPidFile=%[1]s/slurmctld.pid
SlurmdPidFile=%[1]s/slurmd.pid
SlurmctldLogFile=%[1]s/slurmctld.log
SlurmdLogFile=%[1]s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=%[2]s NodeAddr=127.0.0.1 CPUs=%[5]d State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`, d, host, freePort(t), freePort(t), max(1, numCPU()))), 0o644)
	start := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
		out, _ := os.Create(filepath.Join(d, filepath.Base(name)+".out"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			out.Close()
		})
	}
	// Cleanups run last-in first-out: slurmd, slurmctld, then munged.
	start("/usr/sbin/munged", "-F", "-f", "--key-file="+filepath.Join(d, "munge.key"), "--socket="+filepath.Join(d, "munge.sock"),
		"--pid-file="+filepath.Join(d, "munged.pid"), "--log-file="+filepath.Join(d, "munged.log"), "--seed-file="+filepath.Join(d, "munged.seed"))
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(d, "munge.sock")); err == nil {
			break
		}
		if i > 100 {
			t.Fatalf("munged did not create its socket: %s", mustRead(t, filepath.Join(d, "munged.out")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	start("/usr/sbin/slurmctld", "-D", "-f", conf)
	start("/usr/sbin/slurmd", "-D", "-f", conf, "-N", host)
	for i := 0; ; i++ {
		cmd := exec.Command("sinfo", "-h", "-o", "%t")
		cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
		out, _ := cmd.CombinedOutput()
		if strings.TrimSpace(string(out)) == "idle" {
			break
		}
		if i > 300 {
			logs, _ := os.ReadFile(filepath.Join(d, "slurmctld.log"))
			t.Fatalf("the Slurm node is not idle after 30 s: sinfo says %q; slurmctld.log:\n%s", out, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return conf
}

// TestEngineSlurm: a job array on a real single-node Slurm cluster runs
// every variant; ktstr-gauntlet waits for it and the records land in
// the run directory.
func TestEngineSlurm(t *testing.T) {
	conf := startSlurm(t)
	dir, suite, krun := suiteDir(t)
	rundir := filepath.Join(dir, "run")
	code, out, errs := runG(t, []string{"SLURM_CONF=" + conf, "SSH_CONNECTION="},
		"--engine", "slurm", "-j", "2", "--sbatch-arg", "--cpus-per-task=1", "--ktstr-run", krun, "--rundir", rundir, suite)
	if code != 1 || !strings.Contains(out, "gauntlet: 12 variants: 8 pass, 4 fail") || !strings.Contains(errs, "Slurm job ") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	checkRecord(t, rundir, "slurm", 12)
	outs, _ := filepath.Glob(filepath.Join(rundir, "slurm", "*_*.out"))
	if len(outs) != 12 {
		t.Errorf("%d Slurm task outputs, want 12", len(outs))
	}
}

// TestEngineSlurmInterrupt: SIGINT to ktstr-gauntlet cancels the job
// array (scancel): the running variants end unrecorded, the job leaves
// the queue, and ktstr-gauntlet exits 4.
func TestEngineSlurmInterrupt(t *testing.T) {
	conf := startSlurm(t)
	dir, suite, krun := suiteDir(t, "scx_slow")
	rundir := filepath.Join(dir, "run")
	cmd := exec.Command(binary(t), "--engine", "slurm", "-j", "1", "--sbatch-arg", "--cpus-per-task=1",
		"--ktstr-run", krun, "--rundir", rundir, "--only", "scx_slow", suite)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(dir, "slow.pids")
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(pids); len(b) > 0 {
			break
		}
		if i > 600 {
			cmd.Process.Kill()
			t.Fatalf("no slow variant started under Slurm: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 || !strings.Contains(errb.String(), "cancelled Slurm job") {
		t.Errorf("exit %v: %s", err, errb.String())
	}
	for i := 0; ; i++ {
		q := exec.Command("squeue", "-h")
		q.Env = cmd.Env
		out, _ := q.CombinedOutput()
		if strings.TrimSpace(string(out)) == "" {
			break
		}
		if i > 300 {
			t.Fatalf("the job is still queued 30 s after scancel: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Give slurmd's SIGTERM time to reach run-variant's ktstr-run; none may
	// leave a record.
	time.Sleep(time.Second)
	if ms, _ := filepath.Glob(filepath.Join(rundir, "*", "*", "*", "meta.json")); len(ms) != 0 {
		t.Errorf("cancelled variants recorded: %v", ms)
	}
}
