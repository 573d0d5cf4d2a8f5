package monitor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// The control FIFO protocol (man/ktstr-monitor.1, docs/control-fifo.md):
// a VMM names a FIFO in VMStart.ControlFIFO and reads it line by line.
// Each line is one command, ASCII, terminated by "\n", at most 64 bytes:
//
//	sysrq K    inject SysRq key K (one character) into the guest
//
// A reader ignores lines it does not understand. Writers send a whole
// request in one write (below PIPE_BUF, so it is atomic) and never block:
// with no reader, the request is dropped and reported.

// DefaultDumpKeys are the SysRq keys sent when a violation is sustained:
// D dumps sched_ext state (sched_ext_dump on 6.12+), l backtraces every
// active CPU (where a stalled CPU is spinning).
var DefaultDumpKeys = []string{"D", "l"}

// ErrNoReader means nobody holds the control FIFO open for reading.
var ErrNoReader = errors.New("no reader on the control FIFO (is the VMM still running?)")

// DumpRequest builds the bytes of one request for keys.
func DumpRequest(keys []string) ([]byte, error) {
	var b strings.Builder
	for _, k := range keys {
		if len(k) != 1 || k[0] <= ' ' || k[0] > '~' {
			return nil, fmt.Errorf("SysRq key %q must be one printable ASCII character", k)
		}
		b.WriteString("sysrq " + k + "\n")
	}
	if b.Len() > 512 {
		return nil, fmt.Errorf("dump request of %d bytes exceeds 512 (send fewer keys)", b.Len())
	}
	return []byte(b.String()), nil
}

// SendDump writes a dump request for keys to the FIFO at path without
// blocking.
func SendDump(path string, keys []string) error {
	req, err := DumpRequest(keys)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return fmt.Errorf("%s: %w", path, ErrNoReader)
		}
		return fmt.Errorf("open control FIFO: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode()&os.ModeNamedPipe == 0 {
		return fmt.Errorf("control FIFO %s is not a FIFO", path)
	}
	if _, err := f.Write(req); err != nil {
		return fmt.Errorf("write control FIFO %s: %w", path, err)
	}
	return nil
}
