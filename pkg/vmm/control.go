package vmm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

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
