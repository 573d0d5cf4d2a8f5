package vmm

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGuestHangWarnAndNoExit: a guest that prints a line and spins sends
// no frame; with HangWarn the VMM says so while it runs, naming the last
// console line, and reports at the end that the run had no guest_exit.
func TestGuestHangWarnAndNoExit(t *testing.T) {
	needKVM(t)
	var a asm
	a.serial("booting\nstuck in the guest\n").emit(0xEB, 0xFE) // jmp $
	var out, con bytes.Buffer
	var log lockedBuf
	warn := 100 * time.Millisecond
	res, err := Run(Config{GuestCode: a.b, VCPUs: 1, Memory: 64 << 20, Timeout: 30 * warn, Stream: &out, Console: &con,
		Log: &log, HangWarn: warn, ReportNoExit: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != ReasonTimeout {
		t.Fatalf("result %+v, want timeout", res)
	}
	got := log.String()
	for _, want := range []string{
		"ktstr-boot: no frame from the guest yet, ",
		"after start; last console line: stuck in the guest\n",
		"ktstr-boot: the run ended without a guest_exit frame: ended by timeout after ",
		"0 frames; the guest's verdict is missing. Console's last lines:\nbooting\nstuck in the guest\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if con.String() != "booting\nstuck in the guest\n" {
		t.Errorf("console %q: the tail must not change what the console gets", con.String())
	}
}

// TestGuestNoReportWhenOff: without HangWarn and ReportNoExit (--shell,
// --exec, library callers) nothing is printed.
func TestGuestNoReportWhenOff(t *testing.T) {
	needKVM(t)
	var a asm
	a.serial("x\n").reset()
	var out bytes.Buffer
	var log lockedBuf
	if _, err := Run(Config{GuestCode: a.b, VCPUs: 1, Memory: 64 << 20, Timeout: 20 * time.Second, Stream: &out, Log: &log}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "frame") {
		t.Fatalf("log %q", log.String())
	}
}

// TestHangwatchGlue checks the machine's glue without /dev/kvm: the
// console sink keeps a tail and still feeds the console, the watch counts
// guest frames from the Stream, and the end report appears only for a run
// without guest_exit.
func TestHangwatchGlue(t *testing.T) {
	var log lockedBuf
	var con bytes.Buffer
	m := &machine{cfg: Config{Log: &log, HangWarn: 20 * time.Millisecond, ReportNoExit: true}}
	m.stream = NewStream(&bytes.Buffer{})
	sink := m.consoleSink(&con)
	sink.Write([]byte("[ 1.0] Run /init as init process\n[ 2.4] Oops: int3: 0000 [#1]\n[ 2.5] Kernel panic - not syncing: Fatal exception in interrupt\n"))
	if !strings.HasSuffix(con.String(), "Fatal exception in interrupt\n") {
		t.Fatalf("console %q", con.String())
	}
	w := m.startHangWatch()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "no frame from the guest yet") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	w.Stop()
	if !strings.Contains(log.String(), "last console line: [ 2.5] Kernel panic - not syncing: Fatal exception in interrupt\n") {
		t.Fatalf("warning %q", log.String())
	}
	m.reportNoExit(Result{Reason: ReasonPanic, Wall: 6100 * time.Millisecond, GuestFrames: 3})
	if !strings.Contains(log.String(), "ktstr-boot: the run ended without a guest_exit frame: ended by panic after 6.1s, 3 frames; the guest's verdict is missing; first fault on the console: [ 2.4] Oops: int3: 0000 [#1]. Console's last lines:\n[ 1.0] Run") {
		t.Fatalf("end report %q", log.String())
	}
	before := log.String()
	code := int32(0)
	m.reportNoExit(Result{Reason: ReasonGuestExit, GuestCode: &code})
	m.cfg.ReportNoExit = false
	m.reportNoExit(Result{Reason: ReasonPanic})
	if log.String() != before {
		t.Fatalf("reported a run with guest_exit, or with ReportNoExit off: %q", log.String()[len(before):])
	}
}
