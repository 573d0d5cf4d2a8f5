package monitor

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
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

func TestVCPUThreads(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid, tid int, comm, schedstat string) {
		d := filepath.Join(proc, strconv.Itoa(pid), "task", strconv.Itoa(tid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "comm"), []byte(comm+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "schedstat"), []byte(schedstat+"\n"), 0o644)
	}
	mk(100, 100, "qemu-system-x86", "5 0 0")
	mk(100, 101, "CPU 0/TCG", "123456789 10 20")
	mk(100, 102, "CPU 1/KVM", "987 1 1")
	mk(100, 103, "CPU x/KVM", "1 1 1")
	os.WriteFile(filepath.Join(proc, "100", "maps"), []byte("7f00-7f10 rw-s 00000000 00:1a 5 /dev/shm/guest.ram\n"), 0o644)
	v := &VCPUThreads{proc: proc, pid: 100}
	got := v.Times()
	if len(got) != 2 || got[0] != 123456789 || got[1] != 987 {
		t.Fatalf("times %v", got)
	}
	if p := findMapper(proc, "/dev/shm/guest.ram", 1); p != 100 {
		t.Errorf("findMapper = %d", p)
	}
	if p := findMapper(proc, "/dev/shm/guest.ram", 100); p != 0 {
		t.Errorf("findMapper found itself: %d", p)
	}
	for _, bad := range []string{"CPU /x", "CPU -1/x", "CPU 99999/x", "vCPU 0/x", "CPU 0"} {
		if _, ok := parseVCPUName(bad); ok {
			t.Errorf("%q taken for a vCPU thread", bad)
		}
	}
}
