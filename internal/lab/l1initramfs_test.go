package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildL1InitramfsFallback checks the lab's own L1 image (used when
// ktstr-mkinitramfs is not built) with cpio -t: QEMU with every library
// ldd names, the ELF interpreter, firmware, the agent, the 9p table.
func TestBuildL1InitramfsFallback(t *testing.T) {
	q, err := FindQEMU()
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	if _, err := FindBusybox(); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("SKIP: cpio missing (apt-get install cpio)")
	}
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(dir, "l1.cpio")
	err = BuildL1Initramfs(out, &NestedOptions{Agent: agent, Shares: []Share{
		{Tag: "data", HostPath: dir, GuestPath: "/data"},
		{Tag: "packed", HostPath: filepath.Join(dir, "p"), Pack: true},
	}})
	if err == nil {
		t.Fatal("packing a missing directory: no error")
	}
	os.Mkdir(filepath.Join(dir, "p"), 0o755)
	os.WriteFile(filepath.Join(dir, "p", "f"), []byte("x"), 0o644)
	if err := BuildL1Initramfs(out, &NestedOptions{Agent: agent, Shares: []Share{
		{Tag: "data", HostPath: dir, GuestPath: "/data"},
		{Tag: "packed", HostPath: filepath.Join(dir, "p"), Pack: true},
	}}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	cmd := exec.Command(cpio, "-t", "--quiet")
	cmd.Stdin = f
	list, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(list), "\n") {
		have["/"+l] = true
	}
	want := []string{"/init", "/bin/busybox", "/usr/bin/qemu-system-x86_64", "/usr/lib/ktstr-lab/agent",
		"/etc/ktstr-lab/9p", "/lib64/ld-linux-x86-64.so.2", "/mnt/packed/f", "/usr/share/qemu/bios-microvm.bin"}
	libs, _ := exec.Command("ldd", q).Output()
	for _, w := range strings.Fields(string(libs)) {
		if strings.HasPrefix(w, "/") {
			want = append(want, w)
		}
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("L1 initramfs lacks %s", w)
		}
	}
}
