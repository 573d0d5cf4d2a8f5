package guest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/ktstr-go/ktstr/pkg/runconfig"
)

// hvcPath is the guest's virtio console port 0.
const hvcPath = "/dev/hvc0"

// shellPath is the shell both modes use; ktstr-mkinitramfs --busybox packs
// it.
const shellPath = "/bin/sh"

// runInteractive implements ktstr-boot's --shell and --exec guest
// contract: ktstr.exec runs /bin/sh -c CMD with its output on /dev/hvc0
// and reports KTSTR_EXEC_STATUS=<code> there; ktstr.mode=shell runs an
// interactive /bin/sh with /dev/hvc0 as its controlling terminal. It
// returns the init's exit code (the command's status for exec).
func runInteractive(e *env, ov *Overrides) int {
	hvc, err := os.OpenFile(hvcPath, os.O_RDWR, 0)
	if err != nil {
		e.logf("ktstr.exec/ktstr.mode: open %s: %v (boot with ktstr-boot --exec or --shell, which provide it)", hvcPath, err)
		return ExitInternal
	}
	defer hvc.Close()
	if _, err := os.Stat(shellPath); err != nil {
		msg := fmt.Sprintf("ktstr-init: no %s in the initramfs: pack one with ktstr-mkinitramfs --busybox PATH", shellPath)
		fmt.Fprintln(hvc, msg)
		e.logf("%s", msg)
		if ov.HasExec {
			fmt.Fprintf(hvc, "%s%d\n", runconfig.ExecStatusPrefix, 127)
			return 127
		}
		return ExitBadConfig
	}
	if ov.HasExec {
		cmd := exec.Command(shellPath, "-c", ov.Exec)
		cmd.Stdout, cmd.Stderr = hvc, hvc
		cmd.Env = append(os.Environ(), "PATH=/bin:/sbin:/usr/bin:/usr/sbin")
		code := exitStatus(cmd.Run())
		fmt.Fprintf(hvc, "%s%d\n", runconfig.ExecStatusPrefix, code)
		e.logf("ktstr.exec: command exited %d", code)
		return code
	}
	cmd := exec.Command(shellPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = hvc, hvc, hvc
	cmd.Env = append(os.Environ(), "PATH=/bin:/sbin:/usr/bin:/usr/sbin", "TERM=linux", "PS1=ktstr# ")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	code := exitStatus(cmd.Run())
	e.logf("ktstr.mode=shell: shell exited %d", code)
	return ExitPass
}

// exitStatus maps a command's end to a shell-style status: its exit code,
// 128+signal when a signal ended it, 127 when it could not start.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 127
}
