package runconfig

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// The --shell/--exec contract between ktstr-boot and a guest init
// (ktstr-boot(1), GUEST CONTRACT). ktstr-boot asks through the kernel
// command line; the init answers on the guest's /dev/hvc0.
const (
	// ModeKey with the value ModeShell asks for an interactive shell on
	// /dev/hvc0.
	ModeKey   = "ktstr.mode"
	ModeShell = "shell"
	// ExecKey carries a command, base64 (standard encoding), to run as
	// /bin/sh -c CMD with its output on /dev/hvc0.
	ExecKey = "ktstr.exec"
	// ExecStatusPrefix starts the line, of its own on /dev/hvc0, that
	// reports the command's exit status: KTSTR_EXEC_STATUS=<0..255>.
	ExecStatusPrefix = "KTSTR_EXEC_STATUS="
)

// ShellCmdline is the kernel command-line word that asks for a shell.
func ShellCmdline() string { return ModeKey + "=" + ModeShell }

// ExecCmdline is the kernel command-line word that asks the init to run
// cmd (which must not be empty).
func ExecCmdline(cmd string) string {
	return ExecKey + "=" + base64.StdEncoding.EncodeToString([]byte(cmd))
}

// DecodeExec is ExecCmdline's inverse on the word's value.
func DecodeExec(v string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("%s: not standard base64: %w", ExecKey, err)
	}
	if len(b) == 0 {
		return "", errors.New(ExecKey + ": empty command")
	}
	return string(b), nil
}
