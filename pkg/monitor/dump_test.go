package monitor

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mkfifo(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "control")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDumpRequest(t *testing.T) {
	b, err := DumpRequest([]string{"D", "l"})
	if err != nil || string(b) != "sysrq D\nsysrq l\n" {
		t.Fatalf("%q %v", b, err)
	}
	for _, bad := range [][]string{{""}, {"ab"}, {" "}, {"\n"}, {"\x7f"}} {
		if _, err := DumpRequest(bad); err == nil {
			t.Errorf("keys %q accepted", bad)
		}
	}
}

func TestSendDumpFIFO(t *testing.T) {
	p := mkfifo(t)
	if err := SendDump(p, []string{"t"}); !errors.Is(err, ErrNoReader) {
		t.Fatalf("no reader: %v", err)
	}
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := SendDump(p, []string{"t", "l"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "sysrq t\nsysrq l\n" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	notFIFO := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notFIFO, nil, 0o600)
	if err := SendDump(notFIFO, []string{"t"}); err == nil {
		t.Error("dump request to a regular file accepted")
	}
}

// A sustained stall in a stream whose VMStart names a control FIFO makes
// the monitor send one dump request there.
func TestRunRequestsDumpOnce(t *testing.T) {
	p := mkfifo(t)
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec := newRecording()
	header(rec, p)
	for i := range 60 {
		c1 := busy(min(i, 25), 2) // stalls from sample 25
		c0 := busy(i, 1)
		if i >= 40 {
			c0 = busy(40, 1) // a second stall later: no second request
		}
		rec.add(sample(i, "enabled", c0, c1))
	}
	var rep strings.Builder
	res, err := Run(t.Context(), Options{In: &rec.buf, Out: &strings.Builder{}, Report: &rep, Thresholds: DefaultThresholds, DumpKeys: DefaultDumpKeys})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) != 2 || res.Dumps != 1 {
		t.Fatalf("violations %v dumps %d", res.Violations, res.Dumps)
	}
	r.SetReadDeadline(time.Now().Add(time.Second))
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if strings.Join(lines, "|") != "sysrq D|sysrq l" {
		t.Fatalf("FIFO got %q", lines)
	}
}
