package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runrecord"
)

func needTools(t *testing.T, pkg string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat(tool); err != nil {
				t.Skipf("SKIP: %s not installed (apt-get install %s; .ci/run installs it)", tool, pkg)
			}
		}
	}
}

func TestEngineParallel(t *testing.T) {
	needTools(t, "parallel", "parallel")
	dir, suite, krun := suiteDir(t)
	rundir := filepath.Join(dir, "run")
	code, out, errs := runG(t, []string{"SSH_CONNECTION="}, "--engine", "parallel", "--ktstr-run", krun, "--rundir", rundir, "-j", "3", suite)
	if code != 1 || !strings.Contains(out, "gauntlet: 12 variants: 8 pass, 4 fail") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	checkRecord(t, rundir, "parallel", 12)
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSSHD starts an sshd of the test's own on 127.0.0.1 with a
// temporary host key that accepts one temporary client key; it returns
// an ssh_config naming the host "gauntlet-test". sshd stops at cleanup.
func startSSHD(t *testing.T) string {
	t.Helper()
	needTools(t, "openssh-server openssh-client", "/usr/sbin/sshd", "ssh", "ssh-keygen")
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the ssh test starts sshd, which needs root")
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Skipf("SKIP: /run/sshd: %v", err)
	}
	d, err := os.MkdirTemp("", "gauntlet-sshd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	for _, k := range []string{"host_key", "client_key"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(d, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	os.Rename(filepath.Join(d, "client_key.pub"), filepath.Join(d, "authorized_keys"))
	port := freePort(t)
	cfg := filepath.Join(d, "sshd_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile %s/sshd.pid
LogLevel ERROR
`, port, d, d, d)), 0o600)
	sshd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	sshd.Stderr = os.Stderr
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshd.Process.Kill(); sshd.Wait() })
	u, _ := user.Current()
	sshCfg := filepath.Join(d, "ssh_config")
	os.WriteFile(sshCfg, []byte(fmt.Sprintf(`Host gauntlet-test
  HostName 127.0.0.1
  Port %d
  User %s
  IdentityFile %s/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
`, port, u.Username, d)), 0o600)
	for i := 0; ; i++ {
		out, err := exec.Command("ssh", "-F", sshCfg, "gauntlet-test", "echo", "ok").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) == "ok" {
			break
		}
		if i > 100 {
			t.Fatalf("ssh to the test's sshd: %v: %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return sshCfg
}

// TestEngineParallelSSH: GNU parallel runs every variant on a host from
// --sshloginfile, through ssh (to this host's loopback, with the test's
// own sshd); the records land in the same run directory.
func TestEngineParallelSSH(t *testing.T) {
	needTools(t, "parallel", "parallel")
	sshCfg := startSSHD(t)
	dir, suite, krun := suiteDir(t)
	logins := filepath.Join(dir, "sshlogins")
	os.WriteFile(logins, []byte("6/gauntlet-test\n"), 0o644)
	rundir := filepath.Join(dir, "run")
	code, out, errs := runG(t, []string{"PARALLEL_SSH=ssh -F " + sshCfg, "SSH_CONNECTION="},
		"--engine", "parallel", "--sshloginfile", logins, "--ktstr-run", krun, "--rundir", rundir, suite)
	if code != 1 || !strings.Contains(out, "gauntlet: 12 variants: 8 pass, 4 fail") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	rec := checkRecord(t, rundir, "parallel", 12)
	for _, m := range rec.Metas {
		b, _ := os.ReadFile(filepath.Join(runrecord.VariantDir(rundir, m.Variant), runrecord.ConsoleFile))
		if !strings.Contains(string(b), "ssh 127.0.0.1 ") {
			t.Errorf("%s did not run over ssh: %s", m.Variant, b)
		}
	}
}
