package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// FindBusybox returns a static busybox: $KTSTR_BUSYBOX, else busybox on
// $PATH (Debian's busybox-static installs /bin/busybox).
func FindBusybox() (string, error) {
	if b := lookEnvOrPath("KTSTR_BUSYBOX", "busybox"); b != "" {
		return b, nil
	}
	return "", fmt.Errorf("busybox not found: install busybox-static or set KTSTR_BUSYBOX")
}

func lookEnvOrPath(env, name string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// BusyboxArchive returns an archive with busybox at /bin/busybox, the
// standard mount points and init as /init (a shell script run by busybox
// sh). It is the lab's minimal guest: tests add what they need.
func BusyboxArchive(init string) (*Archive, error) {
	bb, err := FindBusybox()
	if err != nil {
		return nil, err
	}
	a := NewArchive()
	if err := a.File("/bin/busybox", bb); err != nil {
		return nil, err
	}
	a.Symlink("/bin/sh", "busybox")
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/mnt", "/root", "/etc", "/run"} {
		a.Dir(d, 0o755)
	}
	a.Bytes("/init", 0o755, []byte(init))
	return a, nil
}

// FindPortShell is a shell function for lab guest scripts: `findport NAME`
// prints /dev/vportNpM for the virtio-serial port named NAME (there is no
// udev in lab guests, so no /dev/virtio-ports links).
const FindPortShell = `findport() { for f in /sys/class/virtio-ports/*/name; do [ "$(cat "$f" 2>/dev/null)" = "$1" ] && { d=${f%/name}; echo /dev/${d##*/}; return 0; }; done; return 1; }
`

// FindPort returns /dev/vportNpM for the virtio-serial port named name, or
// "" when there is none (guest side; reads /sys/class/virtio-ports).
func FindPort(name string) string {
	ents, _ := os.ReadDir("/sys/class/virtio-ports")
	for _, e := range ents {
		b, err := os.ReadFile("/sys/class/virtio-ports/" + e.Name() + "/name")
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + e.Name()
		}
	}
	return ""
}
