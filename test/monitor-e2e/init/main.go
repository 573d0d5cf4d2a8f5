// Command init is the guest init of ktstr-monitor's end-to-end test (see
// ../e2e_test.go), standing in for cmd/ktstr-init until that lands. It
// reads its mode from the kernel command line (ktstr.mode=spin|qmap,
// ktstr.secs=N), reports phases as wire frames on the "ktstr" virtio port,
// and powers the guest off.
//
//	spin: idle for 2 s, then two busy threads pinned to each CPU for N s.
//	qmap: start /scx_qmap -t 2 (every 2nd user thread stalls), wait for it
//	      to attach, then the same spinners until the kernel's watchdog
//	      kills the scheduler or N s pass.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, "e2e-init: "+f+"\n", a...) }

func mounts() {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"bpf", "/sys/fs/bpf", "bpf"}, {"tracefs", "/sys/kernel/tracing", "tracefs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && err != unix.EBUSY {
			logf("mount %s: %v", m.dst, err)
		}
	}
}

func port() *os.File {
	names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, n := range names {
		b, _ := os.ReadFile(n)
		if strings.TrimSpace(string(b)) == "ktstr" {
			f, err := os.OpenFile("/dev/"+filepath.Base(filepath.Dir(n)), os.O_WRONLY, 0)
			if err == nil {
				return f
			}
			logf("open port: %v", err)
		}
	}
	return nil
}

func spin(cpu int, stop <-chan struct{}) {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	unix.SchedSetaffinity(0, &set)
	for {
		select {
		case <-stop:
			return
		default:
		}
		for i := 0; i < 1e5; i++ {
		}
	}
}

func scxState() string {
	b, _ := os.ReadFile("/sys/kernel/sched_ext/state")
	return strings.TrimSpace(string(b))
}

func main() {
	// Every spinner holds an OS thread; give each a P so that all of
	// them are runnable in the guest at once.
	runtime.GOMAXPROCS(4 * runtime.NumCPU())
	mounts()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	mode, secs := "spin", 6
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "ktstr.mode="); ok {
			mode = v
		}
		if v, ok := strings.CutPrefix(f, "ktstr.secs="); ok {
			secs, _ = strconv.Atoi(v)
		}
	}
	var enc *wire.Encoder
	if p := port(); p != nil {
		enc = wire.NewEncoder(p)
	}
	send := func(m wire.Message) {
		if enc != nil {
			enc.Encode(m)
		}
	}
	send(wire.GuestReady{Kernel: "e2e", CPUs: runtime.NumCPU(), InitVersion: "monitor-e2e"})
	logf("mode %s for %d s on %d CPUs", mode, secs, runtime.NumCPU())
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	if mode == "qmap" {
		cmd := exec.Command("/scx_qmap", "-t", "2")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		send(wire.Phase{Phase: wire.PhaseSchedulerStarting})
		if err := cmd.Start(); err != nil {
			logf("start scx_qmap: %v", err)
		}
		for time.Now().Before(deadline) && scxState() != "enabled" {
			time.Sleep(50 * time.Millisecond)
		}
		logf("sched_ext state %s", scxState())
		send(wire.Phase{Phase: wire.PhaseSchedulerAttached})
		deadline = time.Now().Add(time.Duration(secs) * time.Second)
	} else {
		time.Sleep(2 * time.Second)
	}
	stop := make(chan struct{})
	send(wire.Phase{Phase: wire.PhaseScenarioStart, Detail: "spin"})
	for cpu := range runtime.NumCPU() {
		go spin(cpu, stop)
		go spin(cpu, stop)
	}
	for time.Now().Before(deadline) {
		if mode == "qmap" && scxState() == "disabled" {
			logf("scheduler disabled by the kernel")
			time.Sleep(time.Second) // let the monitor see it
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	send(wire.Phase{Phase: wire.PhaseScenarioEnd})
	send(wire.GuestExit{Code: 0})
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
