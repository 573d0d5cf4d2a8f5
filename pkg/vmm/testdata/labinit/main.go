// Command labinit is a tiny guest init for ktstr-boot's Linux boot tests:
// it finds the virtio console port named "ktstr", writes frames to it with
// pkg/wire, and ends the run the way the kernel command line asks
// (ktstr_lab.mode=frames|panic|poweroff|hang, ktstr_lab.frames=N,
// ktstr_lab.code=C). It is not the product's init (cmd/ktstr-init).
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/wire"
)

func say(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "labinit: "+f+"\n", a...)
}

func param(cmdline, key, def string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "ktstr_lab."+key+"="); ok {
			return v
		}
	}
	return def
}

func findPort() (string, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, _ := os.ReadFile(n)
			if strings.TrimSpace(string(b)) == "ktstr" {
				dev := "/dev/" + filepath.Base(filepath.Dir(n))
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio port named ktstr after 20 s (%v)", names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func main() {
	os.Mkdir("/dev", 0o755)
	os.Mkdir("/sys", 0o755)
	os.Mkdir("/proc", 0o755)
	syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	syscall.Mount("sysfs", "/sys", "sysfs", 0, "")
	syscall.Mount("proc", "/proc", "proc", 0, "")
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		os.Stderr = c
	}
	cl, _ := os.ReadFile("/proc/cmdline")
	cmdline := string(cl)
	mode := param(cmdline, "mode", "frames")
	n, _ := strconv.Atoi(param(cmdline, "frames", "10"))
	code, _ := strconv.Atoi(param(cmdline, "code", "0"))
	up, _ := os.ReadFile("/proc/uptime")
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	say("started, mode %s, uptime %s, cpus online %s", mode, strings.Fields(string(up))[0], strings.TrimSpace(string(online)))

	switch mode {
	case "panic":
		os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0)
		os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
	case "hang":
		for {
			time.Sleep(time.Hour)
		}
	case "poweroff":
		syscall.Sync()
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	case "sysrq":
		// wait for the host to inject SysRq through the UART; the kernel
		// logs it, the host test reads the console.
		time.Sleep(time.Hour)
	}

	dev, err := findPort()
	if err != nil {
		say("%v", err)
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		say("open %s: %v", dev, err)
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	enc := wire.NewEncoder(bw)
	enc.Encode(wire.GuestReady{CPUs: 1, InitVersion: "labinit"})
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if err := enc.Encode(wire.Log{Text: fmt.Sprintf("frame %d", i)}); err != nil {
			say("write frame %d: %v", i, err)
			break
		}
	}
	enc.Encode(wire.GuestExit{Code: int32(code)})
	if err := bw.Flush(); err != nil {
		say("flush: %v", err)
	}
	say("wrote %d frames in %s", n, time.Since(t0))
	f.Close()
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
}
