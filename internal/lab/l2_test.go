package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const l2Init = "#!/bin/busybox sh\n/bin/busybox --install -s /bin\n" +
	"mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n" +
	FindPortShell +
	`p=$(findport ktstr)
echo "L2 init uptime=$(cut -d' ' -f1 /proc/uptime) cpus=$(grep -c ^processor /proc/cpuinfo) hv=$(grep -c hypervisor /proc/cpuinfo)"
echo "l2-stream uptime=$(cut -d' ' -f1 /proc/uptime)" > $p
poweroff -f
`

// TestNestedL2Busybox boots the fixture kernel as L2 with QEMU -enable-kvm
// inside L1 and a minimal busybox initramfs: the nested lab's own smoke
// test, independent of ktstr's tools.
func TestNestedL2Busybox(t *testing.T) {
	sharedL1(t)
	k := os.Getenv("KTSTR_KERNEL")
	a, err := BusyboxArchive(l2Init)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile(filepath.Join(l1DataDir(), "l2-busybox.cpio")); err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(l1DataDir(), "bzImage"), kb, 0o644)
	o := L2Options("/data/bzImage", "/data/l2-busybox.cpio", 1, 256, "quiet")
	args := ReferenceArgs(&o, "file,path=/tmp/l2stream")
	cmd := "qemu-system-x86_64 " + ShellQuote(args) + "; echo qemu-exit=$?; cat /tmp/l2stream"
	r := runL1(t, cmd, 150*time.Second)
	t.Logf("L2 run: %v\n%s", r.Wall, consoleLines(r.Stdout, "L2"))
	if r.Err() != nil || !strings.Contains(string(r.Stdout), "qemu-exit=0") || !strings.Contains(string(r.Stdout), "l2-stream uptime=") {
		t.Fatalf("L2 boot failed: %v\n%s\n%s", r.Err(), r.Stdout, r.Stderr)
	}
	fmt.Fprintf(os.Stderr, "internal/lab: L2 busybox boot under nested KVM: %v\n", r.Wall)
}

// consoleLines returns the lines of b containing s.
func consoleLines(b []byte, s string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}
