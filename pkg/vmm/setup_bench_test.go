package vmm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/topology"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Set-up time benchmarks (docs/setup-time.md): the fixture kernel
// ($KTSTR_KERNEL), a 24 MiB initramfs and 1 GiB of guest RAM.
//
//	go test -run '^$' -bench 'Setup' -benchtime 20x ./pkg/vmm/
//
// BenchmarkSetupLoad times, in this process and without /dev/kvm, what
// ktstr-boot does to get the kernel and initramfs into guest RAM: the old
// way (read both files into the heap, concatenate, copy into the mapping)
// as the named baseline, and the way it does it now (read the setup header
// only, then the files straight into the memfd) in the same run.
//
// BenchmarkSetupProcess times whole processes to their first guest
// instruction: ktstr-boot (KTSTR_BOOT_BIN) from exec to its vm_start
// frame, which it writes right before its vCPUs enter KVM_RUN, and
// qemu-system-x86_64 -M microvm from exec to the moment QMP acknowledges
// "cont" after a start with -S. Without /dev/kvm ktstr-boot cannot run
// and is skipped with that reason; QEMU then runs under TCG.

const benchInitrdSize = 24 << 20
const benchMemory = 1 << 30

// benchInputs writes a 24 MiB initramfs (a valid newc archive: the bytes
// matter less than the size) and returns the fixture kernel's path and it.
func benchInputs(b *testing.B) (kernel, initrd string) {
	b.Helper()
	kernel = testenv.Kernel(b)
	var c cpioWriter
	c.dir("dev")
	payload := make([]byte, benchInitrdSize-1024)
	for i := range payload {
		payload[i] = byte(i*131) ^ byte(i>>9)
	}
	c.file("blob", 0o644, payload)
	c.file("init", 0o755, []byte("#!/bin/sh\n"))
	arch := c.finish()
	for len(arch)%512 != 0 {
		arch = append(arch, 0)
	}
	initrd = filepath.Join(b.TempDir(), "initramfs.cpio")
	if err := os.WriteFile(initrd, arch, 0o644); err != nil {
		b.Fatal(err)
	}
	return kernel, initrd
}

func BenchmarkSetupLoad(b *testing.B) {
	kernel, initrd := benchInputs(b)
	report := func(b *testing.B, d map[string]time.Duration) {
		for k, v := range d {
			b.ReportMetric(float64(v.Microseconds())/1000/float64(b.N), k+"-ms/op")
		}
	}
	// Baseline: what ktstr-boot did before (ReadKernel, ReadInitrds, then
	// LoadBoot's copies): every byte on the heap, the initramfs twice.
	b.Run("baseline=heap-copy", func(b *testing.B) {
		d := map[string]time.Duration{}
		for range b.N {
			t0 := time.Now()
			kb, err := os.ReadFile(kernel)
			if err != nil {
				b.Fatal(err)
			}
			k, err := parseBzImage(kb)
			if err != nil {
				b.Fatal(err)
			}
			ib, err := os.ReadFile(initrd)
			if err != nil {
				b.Fatal(err)
			}
			ir := append(make([]byte, 0, len(ib)), ib...) // ReadInitrds' concatenation
			t1 := time.Now()
			mem, err := newMemory(benchMemory)
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			img := kb[(k.SetupSects+1)*512:]
			if err := mem.Write(kernelAddr, img); err != nil {
				b.Fatal(err)
			}
			t3 := time.Now()
			addr, err := initrdPlace(k, mem.Regions()[0].Size, uint64(len(ir)))
			if err != nil {
				b.Fatal(err)
			}
			if err := mem.Write(addr, ir); err != nil {
				b.Fatal(err)
			}
			t4 := time.Now()
			mem.Close()
			d[PhaseOpenInputs] += t1.Sub(t0)
			d[PhaseMapMemory] += t2.Sub(t1)
			d[PhaseLoadKernel] += t3.Sub(t2)
			d[PhaseLoadInitramfs] += t4.Sub(t3)
		}
		report(b, d)
	})
	b.Run("direct", func(b *testing.B) { benchDirect(b, kernel, initrd, false, report) })
	// The same with pread into the mapping instead of sendfile into the
	// memfd (the path a hugetlbfs memfd takes): why LoadFrom prefers the
	// kernel copy.
	b.Run("direct-pread", func(b *testing.B) { benchDirect(b, kernel, initrd, true, report) })
}

func benchDirect(b *testing.B, kernel, initrd string, pread bool, report func(*testing.B, map[string]time.Duration)) {
	s, _ := topology.FromCPUs(1)
	topo, err := topology.New(s)
	if err != nil {
		b.Fatal(err)
	}
	d := map[string]time.Duration{}
	for range b.N {
		t0 := time.Now()
		k, err := OpenKernel(kernel, benchMemory)
		if err != nil {
			b.Fatal(err)
		}
		ir, err := OpenInitramfs([]string{initrd}, k, benchMemory)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		newMem := newMemory
		if pread {
			newMem = newPreadMemory
		}
		mem, err := newMem(benchMemory)
		if err != nil {
			b.Fatal(err)
		}
		clock := NewSetupClock(time.Now())
		if _, err := loadBoot(mem, BootConfig{Kernel: k, Initramfs: ir, Cmdline: DefaultCmdline(), Topology: topo}, clock); err != nil {
			b.Fatal(err)
		}
		mem.Close()
		k.Close()
		ir.Close()
		d[PhaseOpenInputs] += t1.Sub(t0)
		for _, p := range clock.Phases() {
			if p.Name == PhaseLoadKernel || p.Name == PhaseLoadInitramfs {
				d[p.Name] += time.Duration(p.NS)
			}
		}
		d[PhaseMapMemory] += clock.start.Sub(t1)
	}
	report(b, d)
}

// newPreadMemory is newMemory marked as hugetlbfs-like, so that LoadFrom
// reads into the mapping instead of copying in the kernel.
func newPreadMemory(size uint64) (*guestmem.Memory, error) {
	fd, err := unix.MemfdCreate("bench", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return guestmem.MapMemfd(fd, size, Layout(size), unix.MAP_NORESERVE, true)
}

// haveKVM says whether /dev/kvm opens, and why not.
func haveKVM() (bool, string) {
	s, err := kvm.Open()
	if err != nil {
		return false, err.Error()
	}
	s.Close()
	return true, ""
}

func BenchmarkSetupProcess(b *testing.B) {
	kernel, initrd := benchInputs(b)
	okKVM, why := haveKVM()
	b.Run("ktstr-boot", func(b *testing.B) {
		bin := os.Getenv("KTSTR_BOOT_BIN")
		if bin == "" {
			b.Skip("SKIP: KTSTR_BOOT_BIN (a ktstr-boot binary) is not set")
		}
		if !okKVM {
			b.Skipf("SKIP: no /dev/kvm (%s): ktstr-boot cannot reach KVM_RUN here; BenchmarkSetupLoad measures the phases that need no KVM", why)
		}
		var exec2frame, setup time.Duration
		phases := map[string]time.Duration{}
		for range b.N {
			e, vs := bootToVMStart(b, bin, kernel, initrd)
			exec2frame += e
			setup += time.Duration(vs.SetupNS)
			for _, p := range vs.SetupPhases {
				phases[p.Name] += time.Duration(p.NS)
			}
		}
		b.ReportMetric(float64(exec2frame.Microseconds())/1000/float64(b.N), "exec-to-first-KVM_RUN-ms/op")
		b.ReportMetric(float64(setup.Microseconds())/1000/float64(b.N), "setup_ns-ms/op")
		for k, v := range phases {
			b.ReportMetric(float64(v.Microseconds())/1000/float64(b.N), k+"-ms/op")
		}
	})
	// Without /dev/kvm: ktstr-boot from exec to its exit at open_kvm (the
	// Go runtime's start, flags, opening the inputs): the process cost
	// that BenchmarkSetupLoad's in-process figures leave out.
	b.Run("ktstr-boot-until-open_kvm", func(b *testing.B) {
		bin := os.Getenv("KTSTR_BOOT_BIN")
		if bin == "" {
			b.Skip("SKIP: KTSTR_BOOT_BIN (a ktstr-boot binary) is not set")
		}
		if okKVM {
			b.Skip("SKIP: /dev/kvm is here: the ktstr-boot benchmark measures the whole set-up")
		}
		var total time.Duration
		for range b.N {
			cmd := exec.Command(bin, "--kernel", kernel, "--initramfs", initrd, "--memory", "1G",
				"--control-fifo", "none", "--console", os.DevNull)
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			total += time.Since(t0)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != ExitVMMError || !strings.Contains(string(out), kvm.DevicePath) {
				b.Fatalf("ktstr-boot without /dev/kvm: %v, %s", err, out)
			}
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "exec-to-exit-ms/op")
	})
	b.Run("qemu-microvm", func(b *testing.B) {
		qemu, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			b.Skip("SKIP: qemu-system-x86_64 not found")
		}
		accel := "tcg"
		if okKVM {
			accel = "kvm"
		}
		var ready, running time.Duration
		for range b.N {
			r, c := qemuToFirstInstruction(b, qemu, accel, kernel, initrd)
			ready += r
			running += c
		}
		b.ReportMetric(float64(ready.Microseconds())/1000/float64(b.N), "exec-to-QMP-ready-ms/op")
		b.ReportMetric(float64(running.Microseconds())/1000/float64(b.N), "exec-to-cont-ms/op")
		b.Logf("QEMU accelerator: %s", accel)
	})
}

// bootToVMStart runs ktstr-boot and returns the time from just before
// exec to the arrival of its vm_start frame, and the frame; then stops
// the guest.
func bootToVMStart(b *testing.B, bin, kernel, initrd string) (time.Duration, wire.VMStart) {
	b.Helper()
	cmd := exec.Command(bin, "--kernel", kernel, "--initramfs", initrd, "--memory", "1G",
		"--timeout", "30s", "--control-fifo", "none", "--console", os.DevNull, "--hang-warn", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	f, err := wire.NewDecoder(stdout).Next()
	d := time.Since(t0)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("ktstr-boot: no first frame: %v; stderr: %s", err, stderr.String())
	}
	if f.Type != wire.TypeVMStart {
		b.Fatalf("first frame is %s, want vm_start", f.Type)
	}
	m, err := wire.Unmarshal(f.Type, f.Payload)
	if err != nil {
		b.Fatal(err)
	}
	return d, m.(wire.VMStart)
}

// qemuToFirstInstruction starts QEMU microvm stopped (-S) with a QMP
// monitor on stdio and returns the time from just before exec to QMP's
// greeting (the machine is built and the kernel and initramfs read: QEMU
// builds the machine before its main loop serves QMP) and to the return
// of "cont" (the vCPU is running: its first instruction is the next thing
// it does).
func qemuToFirstInstruction(b *testing.B, qemu, accel, kernel, initrd string) (ready, running time.Duration) {
	b.Helper()
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	cmd := exec.Command(qemu, "-M", "microvm", "-accel", accel, "-cpu", cpu, "-smp", "1", "-m", "1024",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
		"-S", "-qmp", "stdio")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			io.WriteString(in, `{"execute":"quit"}`+"\n")
			in.Close()
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, out); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
			}
			cmd.Wait()
		})
	}
	defer stop()
	rd := bufio.NewReader(out)
	next := func() map[string]any {
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				cmd.Process.Kill()
				b.Fatalf("QMP: %v; stderr: %s", err, stderr.String())
			}
			var m map[string]any
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if _, ev := m["event"]; ev {
				continue
			}
			return m
		}
	}
	if _, ok := next()["QMP"]; !ok {
		b.Fatal("QMP: no greeting")
	}
	ready = time.Since(t0)
	for _, c := range []string{"qmp_capabilities", "cont"} {
		io.WriteString(in, fmt.Sprintf(`{"execute":%q}`+"\n", c))
		if m := next(); m["return"] == nil {
			b.Fatalf("QMP %s: %v", c, m)
		}
	}
	running = time.Since(t0)
	return ready, running
}
