package hostlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"golang.org/x/sys/unix"
)

// fake returns a Locker on a fake topology and a fresh lock directory.
// flock conflicts between open file descriptions, so two Acquires in one
// process contend exactly as two processes would.
func fake(t *testing.T, s fakesys.Spec) *Locker {
	t.Helper()
	root := t.TempDir()
	if _, err := fakesys.Write(root, s); err != nil {
		t.Fatal(err)
	}
	top, err := hosttopo.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	return &Locker{Dir: filepath.Join(t.TempDir(), "locks"), Topo: top}
}

func mustDir(t *testing.T, l *Locker) {
	t.Helper()
	if err := ensureDir(l.Dir, true); err != nil {
		t.Fatal(err)
	}
}

var numa2 = fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2} // LLCs {0,1,8,9} {2,3,10,11} | {4,5,12,13} {6,7,14,15}

func TestSelection(t *testing.T) {
	type step struct {
		req     Request
		cpus    []int
		llcs    []int
		nodes   []int
		busy    bool
		unsat   bool
		release bool // release this reservation right away
	}
	for _, tc := range []struct {
		name  string
		spec  fakesys.Spec
		steps []step
	}{
		{name: "exclusive LLCs fill one node, then the other, then busy", spec: numa2, steps: []step{
			{req: Request{Kind: LLCs, Count: 2, Node: -1}, cpus: []int{0, 1, 2, 3, 8, 9, 10, 11}, llcs: []int{0, 1}, nodes: []int{0}},
			{req: Request{Kind: LLCs, Count: 1, Node: -1}, cpus: []int{4, 5, 12, 13}, llcs: []int{2}, nodes: []int{1}},
			{req: Request{Kind: LLCs, Count: 2, Node: -1}, busy: true},
			{req: Request{Kind: LLCs, Count: 1, Node: -1}, llcs: []int{3}, cpus: []int{6, 7, 14, 15}, nodes: []int{1}},
		}},
		{name: "a node with enough beats spreading", spec: numa2, steps: []step{
			{req: Request{Kind: LLCs, Count: 1, Node: -1}, llcs: []int{0}, cpus: []int{0, 1, 8, 9}, nodes: []int{0}},
			{req: Request{Kind: LLCs, Count: 2, Node: -1}, llcs: []int{2, 3}, cpus: []int{4, 5, 6, 7, 12, 13, 14, 15}, nodes: []int{1}},
		}},
		{name: "spreads over nodes only when no node has enough", spec: numa2, steps: []step{
			{req: Request{Kind: LLCs, Count: 1, Node: 0}, llcs: []int{0}, cpus: []int{0, 1, 8, 9}, nodes: []int{0}},
			{req: Request{Kind: LLCs, Count: 1, Node: 1}, llcs: []int{2}, cpus: []int{4, 5, 12, 13}, nodes: []int{1}},
			{req: Request{Kind: LLCs, Count: 2, Node: -1}, llcs: []int{1, 3}, cpus: []int{2, 3, 6, 7, 10, 11, 14, 15}, nodes: []int{0, 1}},
		}},
		{name: "numa-node pins the choice", spec: numa2, steps: []step{
			{req: Request{Kind: LLCs, Count: 2, Node: 1}, llcs: []int{2, 3}, cpus: []int{4, 5, 6, 7, 12, 13, 14, 15}, nodes: []int{1}},
			{req: Request{Kind: LLCs, Count: 1, Node: 1}, busy: true},
			{req: Request{Kind: LLCs, Count: 3, Node: 1}, unsat: true},
		}},
		{name: "shared coexists with shared and CPUs, not exclusive", spec: numa2, steps: []step{
			{req: Request{Kind: LLCs, Count: 4, Shared: true, Node: -1}, llcs: []int{0, 1, 2, 3}, cpus: seq(0, 15), nodes: []int{0, 1}},
			{req: Request{Kind: LLCs, Count: 1, Shared: true, Node: -1}, llcs: []int{0}, cpus: []int{0, 1, 8, 9}, nodes: []int{0}},
			{req: Request{Kind: CPUs, Count: 2, Node: -1}, llcs: []int{0}, cpus: []int{0, 8}, nodes: []int{0}},
			{req: Request{Kind: LLCs, Count: 1, Node: -1}, busy: true},
		}},
		{name: "CPUs pack SMT siblings into the fullest LLC", spec: numa2, steps: []step{
			{req: Request{Kind: CPUs, Count: 3, Node: -1}, llcs: []int{0}, cpus: []int{0, 1, 8}, nodes: []int{0}},
			// LLC 0 has 1 free CPU, LLC 1 has 4: three CPUs go to LLC 1.
			{req: Request{Kind: CPUs, Count: 3, Node: -1}, llcs: []int{1}, cpus: []int{2, 3, 10}, nodes: []int{0}},
			{req: Request{Kind: CPUs, Count: 2, Node: -1}, llcs: []int{0, 1}, cpus: []int{9, 11}, nodes: []int{0}},
			// Node 0 is full of CPU holders: exclusive LLCs come from node 1.
			{req: Request{Kind: LLCs, Count: 2, Node: -1}, llcs: []int{2, 3}, cpus: []int{4, 5, 6, 7, 12, 13, 14, 15}, nodes: []int{1}},
			{req: Request{Kind: CPUs, Count: 1, Node: -1}, busy: true},
		}},
		{name: "cpu-cap takes the fewest shared LLCs and truncates", spec: numa2, steps: []step{
			{req: Request{Kind: CPUCap, Count: 6, Node: -1}, llcs: []int{0, 1}, cpus: []int{0, 1, 2, 3, 8, 9}, nodes: []int{0}},
			{req: Request{Kind: CPUCap, Percent: 25, Node: -1}, llcs: []int{0}, cpus: []int{0, 1, 8, 9}, nodes: []int{0}},
			{req: Request{Kind: CPUCap, Count: 17, Node: -1}, unsat: true},
		}},
		{name: "single-LLC host", spec: fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1}, steps: []step{
			{req: Request{Kind: LLCs, Count: 2, Node: -1}, unsat: true},
			{req: Request{Kind: CPUs, Count: 1, Node: -1}, llcs: []int{0}, cpus: []int{0}, nodes: []int{0}},
			{req: Request{Kind: LLCs, Count: 1, Shared: true, Node: -1}, llcs: []int{0}, cpus: []int{0, 1}, nodes: []int{0}, release: true},
			{req: Request{Kind: LLCs, Count: 1, Node: -1}, busy: true},
			{req: Request{Kind: CPUs, Count: 1, Node: -1}, llcs: []int{0}, cpus: []int{1}, nodes: []int{0}},
			{req: Request{Kind: CPUs, Count: 1, Node: -1}, busy: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := fake(t, tc.spec)
			mustDir(t, l)
			for i, s := range tc.steps {
				s.req.NoWait = true
				res, err := l.Acquire(context.Background(), s.req)
				var busy *BusyError
				var unsat *UnsatisfiableError
				switch {
				case s.busy:
					if !errors.As(err, &busy) {
						t.Fatalf("step %d %s: got %v %v, want busy", i, s.req, res, err)
					}
					continue
				case s.unsat:
					if !errors.As(err, &unsat) {
						t.Fatalf("step %d %s: got %v %v, want unsatisfiable", i, s.req, res, err)
					}
					continue
				case err != nil:
					t.Fatalf("step %d %s: %v", i, s.req, err)
				}
				if !reflect.DeepEqual(res.CPUs, s.cpus) || !reflect.DeepEqual(res.LLCs, s.llcs) || !reflect.DeepEqual(res.Nodes, s.nodes) {
					t.Fatalf("step %d %s: cpus %v llcs %v nodes %v; want %v %v %v", i, s.req, res.CPUs, res.LLCs, res.Nodes, s.cpus, s.llcs, s.nodes)
				}
				if s.release {
					res.Release()
				} else {
					t.Cleanup(res.Release)
				}
			}
		})
	}
}

func seq(a, b int) []int {
	var s []int
	for i := a; i <= b; i++ {
		s = append(s, i)
	}
	return s
}

// A waiter wants any 1 of 2 busy LLCs: it must get whichever is released
// first, without polling, and a queued second waiter must get the other.
func TestWaitForAnyOfM(t *testing.T) {
	l := fake(t, fakesys.Spec{Nodes: 1, LLCs: 2, Cores: 1, Threads: 1})
	mustDir(t, l)
	a, err := l.Acquire(context.Background(), Request{Kind: LLCs, Count: 1, Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Acquire(context.Background(), Request{Kind: LLCs, Count: 1, Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Reservation, 2)
	var prog strings.Builder
	var waited atomic.Int32
	waiter := func(progress io.Writer) {
		r, err := l.Acquire(context.Background(), Request{Kind: LLCs, Count: 1, Node: -1, Progress: progress,
			OnWait: func() { waited.Add(1) }})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}
	go waiter(&prog)
	waitFor(t, func() bool { _, _, w, _ := newLockView(l.Dir).state(llcFile(0)); return w == 1 })
	go waiter(nil)
	waitFor(t, func() bool { _, _, w, _ := newLockView(l.Dir).state(queueFile); return w == 1 })
	b.Release() // LLC 1
	r1 := <-got
	if !reflect.DeepEqual(r1.LLCs, []int{1}) {
		t.Fatalf("first waiter got LLCs %v, want [1]", r1.LLCs)
	}
	a.Release()
	r2 := <-got
	if !reflect.DeepEqual(r2.LLCs, []int{0}) {
		t.Fatalf("second waiter got LLCs %v, want [0]", r2.LLCs)
	}
	r1.Release()
	r2.Release()
	if waited.Load() != 2 || !strings.HasPrefix(prog.String(), "ktstr-hostlock: waiting for 1 exclusive LLC(s)") ||
		!strings.HasSuffix(prog.String(), " - acquired\n") {
		t.Errorf("OnWait called %d times (want 2); progress %q", waited.Load(), prog.String())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10s")
}

func TestTimeout(t *testing.T) {
	l := fake(t, fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1})
	mustDir(t, l)
	h, err := l.Acquire(context.Background(), Request{Kind: LLCs, Count: 1, Node: -1, Command: "holder-cmd"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = l.Acquire(ctx, Request{Kind: CPUs, Count: 1, Node: -1})
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "holder-cmd") {
		t.Fatalf("got %v, want a timeout naming holder-cmd", err)
	}
}

func TestStatusIgnoresStaleRecords(t *testing.T) {
	l := fake(t, fakesys.Spec{Nodes: 1, LLCs: 2, Cores: 1, Threads: 1})
	mustDir(t, l)
	// A record left by a holder that is gone: LLC 0 must read free.
	stale := Record{PID: 999999, Mode: "exclusive", Command: "ghost"}
	if err := os.WriteFile(filepath.Join(l.Dir, llcFile(0)), stale.line(), 0o666); err != nil {
		t.Fatal(err)
	}
	r, err := l.Acquire(context.Background(), Request{Kind: CPUs, Count: 1, Node: -1, Command: "me"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	st := l.Status()
	if st.LLCs[0].State != "shared" || len(st.LLCs[0].Holders) != 1 || st.LLCs[0].Holders[0].Command != "me" ||
		st.LLCs[0].Holders[0].PID != os.Getpid() {
		t.Fatalf("LLC 0: %+v", st.LLCs[0])
	}
	if st.LLCs[1].State != "free" || st.CPUs[0].State != "exclusive" || st.CPUs[1].State != "free" {
		t.Fatalf("status: %+v", st)
	}
	var b strings.Builder
	if err := st.WriteText(&b); err != nil || !strings.Contains(b.String(), "cpu 0") || strings.Contains(b.String(), "ghost") {
		t.Fatalf("text status:\n%s", b.String())
	}
}

func TestLockFileSafety(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "locks")
	old := syscall.Umask(0o077)
	err := ensureDir(dir, true)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode()&(os.ModeSticky|os.ModePerm) != os.ModeSticky|0o777 {
		t.Fatalf("%s mode %v, want 1777", dir, fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Dir(dir)); fi.Mode()&0o002 != 0 {
		t.Fatalf("parent %s mode %v: only the lock directory should be world-writable", filepath.Dir(dir), fi.Mode())
	}
	old = syscall.Umask(0o077)
	f, err := openLockFile(dir, "ok.lock")
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	f.Close()
	if fi.Mode().Perm() != 0o666 {
		t.Fatalf("lock file mode %v, want 0666", fi.Mode())
	}
	os.Symlink("/etc/passwd", filepath.Join(dir, "sym.lock"))
	unix.Mkfifo(filepath.Join(dir, "fifo.lock"), 0o666)
	os.WriteFile(filepath.Join(dir, "orig"), nil, 0o666)
	os.Link(filepath.Join(dir, "orig"), filepath.Join(dir, "hard.lock"))
	for name, want := range map[string]string{"sym.lock": "symbolic link", "fifo.lock": "not a regular file", "hard.lock": "hard links"} {
		_, err := openLockFile(dir, name)
		var le *LockError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want a LockError saying %q", name, err, want)
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(dir, link)
	if err := ensureDir(link, false); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("default lock dir through a symlink: %v", err)
	}
}

func TestResolveDir(t *testing.T) {
	d := filepath.Join(t.TempDir(), "x")
	got, err := resolveDir(func(k string) string { return map[string]string{EnvLockDir: d}[k] })
	if err != nil || got != d {
		t.Fatalf("resolveDir = %q, %v; want %q", got, err, d)
	}
}

func TestParseProcLocks(t *testing.T) {
	in := "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF\n" +
		"1: -> FLOCK  ADVISORY  WRITE 1236 00:1a:5678 0 EOF\n" +
		"2: POSIX  ADVISORY  READ 99 08:01:1 0 EOF\n" +
		"3: FLOCK  ADVISORY  READ 77 fd:0a:42 0 EOF\n" +
		"garbage\n4: FLOCK ADVISORY WRITE x 00:1a:1 0 EOF\n"
	want := []procLock{
		{PID: 1234, Write: true, Major: 0, Minor: 0x1a, Ino: 5678},
		{PID: 1236, Write: true, Waiting: true, Major: 0, Minor: 0x1a, Ino: 5678},
		{PID: 77, Major: 0xfd, Minor: 0x0a, Ino: 42},
	}
	if got := parseProcLocks([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func FuzzParseRecords(f *testing.F) {
	f.Add([]byte(Record{PID: 1, Mode: "shared", Command: "x"}.line()))
	f.Add([]byte("{\"pid\":-1}\n{\n\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range parseRecords(b) {
			if r.PID <= 0 {
				t.Fatalf("accepted pid %d", r.PID)
			}
		}
		parseProcLocks(b)
	})
}

// FuzzRecordLine: the hand-written encoder and encoding/json agree.
func FuzzRecordLine(f *testing.F) {
	f.Add(12, "sh -c 'echo \"$KTSTR_CPUS\"'\t\\", "0-3,8")
	f.Add(1, "\xff\x00\u2028 caf\u00e9", "")
	f.Add(7, strings.Repeat("x", 3000), "0")
	f.Fuzz(func(t *testing.T, pid int, cmd, cpus string) {
		if pid <= 0 {
			pid = 1
		}
		since := time.Date(2026, 11, 27, 1, 2, 3, 456e6, time.UTC)
		in := Record{PID: pid, Mode: "shared", Request: "--cpus 1", CPUs: cpus, Since: since, Command: cmd}
		line := in.line()
		if line[len(line)-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 || len(line) > 4096 && len(cpus) < 500 {
			t.Fatalf("line %q: not one line, or too long", line)
		}
		var out Record
		if err := json.Unmarshal(line, &out); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		valid := func(s string) string { return string([]rune(s)) } // U+FFFD per invalid byte
		cmdOK := out.Command == valid(cmd) && len(cmd) <= 200 || len(cmd) > 200 && out.Command == valid(cmd[:200])+"..."
		if out.PID != pid || out.CPUs != valid(cpus) || !out.Since.Equal(since) || !cmdOK {
			t.Fatalf("round trip of %+v: %+v", in, out)
		}
	})
}
