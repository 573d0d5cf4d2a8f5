package vmm

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// AutoControlFIFO returns the default control FIFO path in dir,
// dir/ktstr-boot-PID.ctl, after removing the stale FIFOs of that pattern
// that earlier ktstr-boots killed without cleaning up left there (see
// sweepControlFIFOs).
func AutoControlFIFO(dir string) string {
	sweepControlFIFOs(dir)
	return filepath.Join(dir, fmt.Sprintf("ktstr-boot-%d.ctl", os.Getpid()))
}

// sweepControlFIFOs removes dir/ktstr-boot-PID.ctl FIFOs that are stale:
// owned by this user, and with no reader, which a running ktstr-boot
// always is (it keeps its FIFO open for reading and writing); and whose PID
// is not a running process, or is this process (a FIFO of a dead
// process that had this pid). The reader check alone decides for a live
// ktstr-boot in another pid namespace. It returns how many it removed.
func sweepControlFIFOs(dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, de := range ents {
		var pid int
		if de.Type()&fs.ModeNamedPipe == 0 {
			continue
		}
		if _, err := fmt.Sscanf(de.Name(), "ktstr-boot-%d.ctl", &pid); err != nil || pid <= 0 || de.Name() != fmt.Sprintf("ktstr-boot-%d.ctl", pid) {
			continue
		}
		if pid != os.Getpid() {
			if err := unix.Kill(pid, 0); err == nil || err == unix.EPERM {
				continue // running
			}
		}
		p := filepath.Join(dir, de.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Uid != uint32(os.Getuid()) || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			continue
		}
		// Opening for writing without blocking fails with ENXIO when no
		// process has the FIFO open for reading.
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if err == unix.ENXIO && os.Remove(p) == nil {
			n++
		}
	}
	return n
}

// The control FIFO takes one command per line:
//
//	sysrq KEY   send a serial break and KEY on COM1 (Magic SysRq, e.g. "sysrq t")
//	stop        stop the guest (exit reason "stopped")
//	regs        print every vCPU's registers (rip, rsp, rflags, cr3) on the log
//
// Unknown lines are reported on the console stream and ignored.
func (m *machine) startControl(path string) error {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("create control FIFO %s: %w", path, err)
	}
	m.closers = append(m.closers, func() { os.Remove(path) })
	// O_RDWR keeps a writer open, so the FIFO never reports EOF between
	// clients, and opening does not block.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("open control FIFO %s: %w", path, err)
	}
	m.closers = append(m.closers, func() { f.Close() })
	go m.readControl(f)
	return nil
}

// maxControlLine bounds a control command; a longer line is reported and
// skipped, and reading goes on with the next line.
const maxControlLine = 256

func (m *machine) readControl(f io.Reader) {
	r := bufio.NewReaderSize(f, maxControlLine)
	for {
		line, more, err := r.ReadLine()
		if err != nil {
			return
		}
		if !more {
			m.control(string(line))
			continue
		}
		for more && err == nil {
			_, more, err = r.ReadLine()
		}
		fmt.Fprintf(m.watch, "ktstr-boot: control FIFO: line longer than %d bytes ignored\n", maxControlLine)
	}
}

func (m *machine) control(line string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return
	}
	switch {
	case f[0] == "sysrq" && len(f) == 2 && len(f[1]) == 1:
		m.com1.SysRq(f[1][0])
	case f[0] == "stop" && len(f) == 1:
		m.finish(ReasonStopped, "stopped through the control FIFO")
	case f[0] == "regs" && len(f) == 1:
		m.requestRegs()
	default:
		fmt.Fprintf(m.watch, "ktstr-boot: control FIFO: unknown command %q (want \"sysrq KEY\", \"regs\" or \"stop\")\n", line)
	}
}
