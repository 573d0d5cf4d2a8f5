package vmm

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/kvmprobe"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

// TestBootBenchmarkInner times, on real KVM, process start to the guest's
// first stream frame and to exit, for ktstr-boot and for QEMU microvm on
// the same kernel and initramfs (the lab init writing 1000 frames). It
// reports figures (t.Log and "BENCH" lines); it asserts only that both
// runs completed, never a time.
func TestBootBenchmarkInner(t *testing.T) {
	if os.Getenv("KTSTR_BENCH") != "1" {
		t.Skip("SKIP: KTSTR_BENCH=1 not set (run through TestNestedBenchmark)")
	}
	k, initrd := needLinux(t)
	boot := os.Getenv("KTSTR_BOOT_BIN")
	if boot == "" {
		t.Skip("SKIP: KTSTR_BOOT_BIN (a ktstr-boot binary) not set")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("SKIP: qemu-system-x86_64 not found: no baseline")
	}
	dir := t.TempDir()
	kp, ip := filepath.Join(dir, "bzImage"), filepath.Join(dir, "initrd")
	os.WriteFile(kp, k, 0o644)
	os.WriteFile(ip, initrd, 0o644)
	args := strings.TrimSpace("ktstr_lab.mode=frames ktstr_lab.frames=1000 " + os.Getenv("KTSTR_LAB_L2_ARGS"))

	pr := kvmprobe.Probe(kvmprobe.Options{})
	fmt.Printf("BENCH kvm probe: %s: %s; create_vm %v\n", pr.Kind, pr.Evidence(), pr.CreateVM)

	// ktstr-boot: first guest (non-host) frame on its stdout
	cmd := exec.Command(boot, "--kernel", kp, "--initramfs", ip, "--memory", "512M", "--timeout", "5m",
		"--control-fifo", "none", "--console", filepath.Join(dir, "kcon"), "--", args)
	stdout, _ := cmd.StdoutPipe()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var first time.Duration
	d := wire.NewDecoder(stdout)
	frames := 0
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("ktstr-boot stream: %v", err)
		}
		if f.Flags&wire.FlagHost == 0 {
			if frames == 0 {
				first = time.Since(t0)
			}
			frames++
		}
	}
	err = cmd.Wait()
	kWall := time.Since(t0)
	if frames != 1002 || err != nil {
		con, _ := os.ReadFile(filepath.Join(dir, "kcon"))
		t.Fatalf("ktstr-boot: %d guest frames, %v; console tail %s", frames, err, tail(string(con), 800))
	}
	fmt.Printf("BENCH ktstr-boot: first guest frame %.3f s, exit %.3f s\n", first.Seconds(), kWall.Seconds())

	// QEMU microvm: poll the port's output file for its first byte
	stream := filepath.Join(dir, "qstream")
	qc := exec.Command(qemu, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-smp", "1", "-m", "512",
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "file:"+filepath.Join(dir, "qcon"),
		"-device", "virtio-serial-device", "-chardev", "file,id=c1,path="+stream,
		"-device", "virtserialport,chardev=c1,name=ktstr",
		"-kernel", kp, "-initrd", ip, "-append", "console=ttyS0 reboot=k panic=-1 pci=off quiet "+args)
	var qerr bytes.Buffer
	qc.Stderr = &qerr
	t0 = time.Now()
	if err := qc.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- qc.Wait() }()
	var qfirst time.Duration
	var qres error
wait:
	for {
		select {
		case qres = <-done:
			break wait
		case <-time.After(2 * time.Millisecond):
			if qfirst == 0 {
				if st, err := os.Stat(stream); err == nil && st.Size() > 0 {
					qfirst = time.Since(t0)
				}
			}
		}
	}
	qWall := time.Since(t0)
	sb, _ := os.ReadFile(stream)
	qframes := len(decodeAll(t, sb))
	if qframes != 1002 {
		con, _ := os.ReadFile(filepath.Join(dir, "qcon"))
		t.Fatalf("QEMU: %d frames (%v, %s); console tail %s", qframes, qres, strings.TrimSpace(qerr.String()), tail(string(con), 800))
	}
	fmt.Printf("BENCH qemu microvm: first guest frame %.3f s, exit %.3f s\n", qfirst.Seconds(), qWall.Seconds())
	fmt.Printf("BENCH ratio ktstr-boot/qemu: first frame %.2f, exit %.2f\n", first.Seconds()/qfirst.Seconds(), kWall.Seconds()/qWall.Seconds())
}
