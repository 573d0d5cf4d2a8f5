package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/fakesys"
	"github.com/ktstr-go/ktstr/pkg/kernel"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

func TestCombine(t *testing.T) {
	ran := func(tool string, code int) Status { return Status{Tool: tool, Code: code, Ran: true} }
	all := func(mk, boot, mon, dec int) []Status {
		return []Status{ran(Mkinitramfs, mk), ran(Hostlock, boot), ran(Monitor, mon), ran(Decode, dec)}
	}
	for _, c := range []struct {
		name string
		st   []Status
		want int
		why  string
	}{
		{"all pass", all(0, 0, 0, 0), ExitPass, "PASS"},
		{"verdict fail", all(0, 1, 0, 1), ExitFail, "verdict FAIL"},
		{"stall: guest 4, monitor violation, verdict fail", all(0, 4, 1, 1), ExitFail, "ktstr-monitor exited 1 (violation)"},
		{"verdict pass but monitor violation", all(0, 0, 1, 0), ExitFail, "violation"},
		{"verdict pass but guest exit code", all(0, 7, 0, 0), ExitFail, "the guest's exit code"},
		{"panic", all(0, 121, 3, 3), ExitFail, "guest kernel panic"},
		{"timeout", all(0, 124, 3, 3), ExitFail, "timeout"},
		{"VMM error", all(0, 125, 3, 3), ExitTool, "usage, lock or VMM error"},
		{"hostlock error 1 without a stream", all(0, 1, 3, 3), ExitTool, "no complete stream"},
		{"hostlock 3 (never fits) without a stream", all(0, 3, 3, 3), ExitTool, "no complete stream"},
		{"guest 3 (not attached) with a stream", all(0, 3, 0, 1), ExitFail, "the guest's exit code"},
		{"hostlock busy (75 with --no-wait)", all(0, 75, 3, 3), ExitTool, "no complete stream"},
		{"decoder usage error", all(0, 0, 0, 2), ExitTool, "ktstr-decode exited 2"},
		{"monitor corrupt stream", all(0, 0, 2, 0), ExitTool, "ktstr-monitor exited 2"},
		{"no verdict", all(0, 0, 3, 3), ExitNoVerdict, "NO VERDICT"},
		{"decoder killed", all(0, 0, 0, -1), ExitTool, "killed by a signal"},
		{"tee failed", append(all(0, 0, 0, 0), ran(Tee, 1)), ExitTool, "tee exited 1"},
		{"decoder did not run", []Status{ran(Mkinitramfs, 0), ran(Hostlock, 0), ran(Monitor, 0), {Tool: Decode}}, ExitTool, "ktstr-decode did not run"},
		{"interrupted", all(0, 130, 3, 3), ExitTool, "interrupted"},
	} {
		got, why := Combine(c.st)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: Combine = %d %q, want %d containing %q", c.name, got, why, c.want, c.why)
		}
		if got == ExitPass {
			for _, s := range c.st {
				if s.Code != 0 || !s.Ran {
					t.Errorf("%s: PASS with %+v", c.name, s)
				}
			}
		}
	}
}

func fixtureFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	k, sched := fixtureFile(t, "bzImage"), fixtureFile(t, "scx_x")
	dir := t.TempDir()
	empty := t.TempDir()
	nowhere := kernel.ResolveOptions{CacheDir: empty, Cwd: empty, Root: empty}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    Spec
		err  string
	}{
		{"ok", Spec{Kernel: k, Scheduler: sched}, ""},
		{"no kernel anywhere", Spec{KernelOptions: nowhere}, "--kernel not given"},
		{"missing kernel", Spec{Kernel: "/nonexistent/bzImage", KernelOptions: nowhere}, "--kernel /nonexistent/bzImage"},
		{"kernel is a directory without one", Spec{Kernel: dir, KernelOptions: nowhere}, "--kernel " + dir},
		{"kernel is a FIFO", Spec{Kernel: fifo}, "not a regular file"},
		{"missing scheduler", Spec{Kernel: k, Scheduler: "/nonexistent/scx"}, "--scheduler"},
		{"args without scheduler", Spec{Kernel: k, SchedArgs: []string{"-t", "2"}}, "need --scheduler"},
		{"bad topology", Spec{Kernel: k, Topology: "2x"}, "--topology"},
		{"topology nodes > LLCs", Spec{Kernel: k, Topology: "2n1l1c1t"}, "--topology"},
		{"negative timeout", Spec{Kernel: k, Timeout: -time.Second}, "negative"},
		{"scenario fits", Spec{Kernel: k, Scenario: "cpuset_resize", Topology: "1n1l4c1t"}, ""},
		{"scenario does not fit", Spec{Kernel: k, Scenario: "cpuset_resize", Topology: "1n1l2c1t"},
			"--scenario cpuset_resize does not fit --topology 1n1l2c1t: set_cpuset step 1 cg_1: cpuset list names CPU 2, which is not online"},
		{"unknown scenario", Spec{Kernel: k, Scenario: "nope"}, "--scenario: scenario \"nope\" is not in the catalog"},
		{"catalog scenario fits 2 LLCs", Spec{Kernel: k, Scenario: "steady_llc", Topology: "1n2l1c1t"}, ""},
		{"LLC scenario does not fit", Spec{Kernel: k, Scenario: "steady_llc"}, "does not fit --topology 1n1l2c1t: step 0 cgroup llc1: cpuset wants LLC 1"},
		{"unknown scenario name", Spec{Kernel: k, Scenario: "no_such_scenario"}, "--scenario: scenario \"no_such_scenario\" is not in the catalog"},
		{"missing scenario file", Spec{Kernel: k, Scenario: "/nonexistent/s.json"}, "read scenario file"},
		{"reserve llcs", Spec{Kernel: k, Reserve: ReserveLLCs}, ""},
		{"reserve cpus", Spec{Kernel: k, Reserve: ReserveCPUs}, ""},
		{"reserve bad", Spec{Kernel: k, Reserve: "llc"}, `--reserve "llc": want cpus or llcs`},
	} {
		s := c.s
		_, err := s.Check()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: Check() = %v, want %q", c.name, err, c.err)
		}
	}
	s := Spec{Kernel: k}
	topo, err := s.Check()
	s.Release()
	if err != nil || len(topo.CPUs) != 2 || s.Topology != DefaultTopology || s.VMM != "auto" || s.Reserve != ReserveCPUs || s.Timeout != DefaultTimeout || s.Memory != "1G" {
		t.Errorf("defaults: %+v %v", s, err)
	}
}

func testTools() Tools {
	return Tools{Mkinitramfs: "/b/ktstr-mkinitramfs", Hostlock: "/b/ktstr-hostlock", Boot: "/b/ktstr-boot",
		Monitor: "/b/ktstr-monitor", Decode: "/b/ktstr-decode", Tee: "/usr/bin/tee"}
}

func TestStagesAndScript(t *testing.T) {
	s := Spec{Kernel: "/k/bzImage", Scheduler: "/s/scx_qmap", SchedArgs: []string{"-t", "2"}, Scenario: "steady",
		Topology: "1n1l2c1t", Memory: "1G", Timeout: 4 * time.Minute, VMM: "auto", Save: "/tmp/my run.ktstr", Vmlinux: "/k/vmlinux"}
	tl := testTools()
	if got, want := strings.Join(s.MkinitramfsArgs(tl), " "), "/b/ktstr-mkinitramfs --scheduler /s/scx_qmap --scenario steady -- -t 2"; got != want {
		t.Errorf("mkinitramfs: %q, want %q", got, want)
	}
	st := s.Stages(tl, "/c/blob", Reservation{ReserveCPUs, 2})
	want := [][]string{
		{"/b/ktstr-hostlock", "--cpus", "2", "--", "/b/ktstr-boot", "--vmm", "auto", "--kernel", "/k/bzImage", "--initramfs", "/c/blob", "--topology", "1n1l2c1t", "--memory", "1G", "--timeout", "4m0s"},
		{"/b/ktstr-monitor", "--tee", "--emit", "--vmlinux", "/k/vmlinux"},
		{"/usr/bin/tee", "/tmp/my run.ktstr"},
		{"/b/ktstr-decode", "-q", "--verdict"},
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("stages:\n%q\nwant\n%q", st, want)
	}
	script := s.Script(tl, Reservation{ReserveCPUs, 2})
	for _, w := range []string{
		"set -o pipefail\n",
		"blob=$(/b/ktstr-mkinitramfs --scheduler /s/scx_qmap --scenario steady -- -t 2) || exit 4\n",
		`--initramfs "$blob" `,
		"| /usr/bin/tee '/tmp/my run.ktstr'",
		"| /b/ktstr-decode -q --verdict\n",
	} {
		if !strings.Contains(script, w) {
			t.Errorf("script lacks %q:\n%s", w, script)
		}
	}
	// Without --save there is no tee; --json reaches the decoder.
	s.Save, s.JSON = "", true
	if sc := s.Script(tl, Reservation{ReserveCPUs, 1}); strings.Contains(sc, "/usr/bin/tee") || !strings.Contains(sc, "--verdict --json") {
		t.Errorf("script without --save, with --json:\n%s", sc)
	}
}

// TestStagesReserve: the reservation reaches ktstr-hostlock as its mode
// flag, before the -- that starts ktstr-boot; a fake sysfs root goes
// with it (so ktstr-hostlock reads the topology the size came from), the
// real one is not spelled out; the --dry-run script says the same.
func TestStagesReserve(t *testing.T) {
	tl := testTools()
	boot := []string{"--", "/b/ktstr-boot", "--vmm", "auto", "--kernel", "/k/bzImage", "--initramfs", "/c/blob", "--topology", "1n2l2c1t", "--memory", "1G", "--timeout", "4m0s"}
	for _, c := range []struct {
		name    string
		sysfs   string
		r       Reservation
		want    []string
		wantSh  string
		wantNot string
	}{
		{"cpus", "", Reservation{ReserveCPUs, 4}, []string{"/b/ktstr-hostlock", "--cpus", "4"}, "/b/ktstr-hostlock --cpus 4 -- /b/ktstr-boot ", "--llcs"},
		{"llcs", "", Reservation{ReserveLLCs, 2}, []string{"/b/ktstr-hostlock", "--llcs", "2"}, "/b/ktstr-hostlock --llcs 2 -- /b/ktstr-boot ", "--cpus"},
		{"llcs on /sys", "/sys", Reservation{ReserveLLCs, 1}, []string{"/b/ktstr-hostlock", "--llcs", "1"}, "/b/ktstr-hostlock --llcs 1 -- ", "--sysfs-root"},
		{"llcs on a fake tree", "/t/fake sys", Reservation{ReserveLLCs, 3}, []string{"/b/ktstr-hostlock", "--sysfs-root", "/t/fake sys", "--llcs", "3"},
			"/b/ktstr-hostlock --sysfs-root '/t/fake sys' --llcs 3 -- /b/ktstr-boot ", "--cpus"},
	} {
		s := Spec{Kernel: "/k/bzImage", Topology: "1n2l2c1t", Memory: "1G", Timeout: 4 * time.Minute, VMM: "auto", SysfsRoot: c.sysfs}
		st := s.Stages(tl, "/c/blob", c.r)
		if want := append(c.want, boot...); fmt.Sprint(st[0]) != fmt.Sprint(want) {
			t.Errorf("%s: boot stage\n%q\nwant\n%q", c.name, st[0], want)
		}
		if sc := s.Script(tl, c.r); !strings.Contains(sc, c.wantSh) || strings.Contains(sc, c.wantNot) {
			t.Errorf("%s: script lacks %q or has %q:\n%s", c.name, c.wantSh, c.wantNot, sc)
		}
	}
}

// TestHostReservation sizes reservations on fake hosts: --reserve cpus a
// CPU per vCPU (capped by this process's CPUs, never reading sysfs);
// --reserve llcs the fewest whole LLCs that hold the vCPUs, and a guest
// bigger than the host's LLCs a FitError naming what the host has.
func TestHostReservation(t *testing.T) {
	fake := func(s fakesys.Spec) string {
		root := t.TempDir()
		if _, err := fakesys.Write(root, s); err != nil {
			t.Fatal(err)
		}
		return root
	}
	four := fake(fakesys.Spec{Nodes: 2, LLCs: 2, Cores: 2, Threads: 2}) // 4 LLCs of 4 CPUs
	one := fake(fakesys.Spec{Nodes: 1, LLCs: 1, Cores: 2, Threads: 1})  // like this project's hosts
	guest := func(shape string) *topology.Topology {
		sh, err := topology.Parse(shape)
		if err != nil {
			t.Fatal(err)
		}
		g, err := topology.New(sh)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	for _, c := range []struct {
		name, reserve, sysfs, shape string
		want                        Reservation
		err                         string
		fit                         bool
	}{
		{"cpus 1", ReserveCPUs, "/nonexistent", "1n1l1c1t", Reservation{ReserveCPUs, 1}, "", false},
		{"llcs 1 vCPU", ReserveLLCs, four, "1n1l1c1t", Reservation{ReserveLLCs, 1}, "", false},
		{"llcs 4 vCPUs", ReserveLLCs, four, "1n1l4c1t", Reservation{ReserveLLCs, 1}, "", false},
		{"llcs 5 vCPUs", ReserveLLCs, four, "1n1l5c1t", Reservation{ReserveLLCs, 2}, "", false},
		{"llcs 16 vCPUs", ReserveLLCs, four, "2n4l2c2t", Reservation{ReserveLLCs, 4}, "", false},
		{"llcs 32 vCPUs", ReserveLLCs, four, "2n4l4c2t", Reservation{}, "--reserve llcs: the 32 vCPUs of --topology 2n4l4c2t: 32 CPUs do not fit in this host's LLCs: its 4 LLC(s) hold 16 CPU(s) this process may use (0-15); give a smaller --topology, or --reserve cpus", true},
		{"llcs 2 vCPUs on 1 LLC", ReserveLLCs, one, "1n1l2c1t", Reservation{ReserveLLCs, 1}, "", false},
		{"llcs 4 vCPUs on 1 LLC of 2", ReserveLLCs, one, "1n1l4c1t", Reservation{}, "its 1 LLC(s) hold 2 CPU(s)", true},
		{"llcs without sysfs", ReserveLLCs, t.TempDir(), "1n1l1c1t", Reservation{}, "--reserve llcs: reading the host topology", false},
	} {
		s := Spec{Reserve: c.reserve, SysfsRoot: c.sysfs, Topology: c.shape}
		got, err := s.HostReservation(guest(c.shape))
		var fe *FitError
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || errors.As(err, &fe) != c.fit {
				t.Errorf("%s: HostReservation = %v, %v; want an error with %q (FitError %v)", c.name, got, err, c.err, c.fit)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: HostReservation = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	// --reserve cpus caps at this process's CPUs: a bigger guest is
	// overcommitted, not refused.
	s := Spec{Reserve: ReserveCPUs}
	if got, err := s.HostReservation(guest("2n4l8c2t")); err != nil || got.Count != min(128, runtime.NumCPU()) {
		t.Errorf("cpus 128: %v, %v", got, err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path-1.2": "plain/path-1.2", "": "''", "a b": "'a b'", "it's": `'it'\''s'`, "$HOME": "'$HOME'", "a;rm": "'a;rm'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
		if in == "" {
			continue
		}
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(in)).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh reads %s back as %q (%v)", shellQuote(in), out, err)
		}
	}
}

// fakeTools writes shell scripts standing in for the ktstr tools: each
// passes its input through (the stream) and exits with the code named in
// $FAKE_<TOOL>, so the real process plumbing and exit-status handling are
// tested without booting anything.
func fakeTools(t *testing.T) Tools {
	dir := t.TempDir()
	tl := Tools{Tee: "/usr/bin/tee"}
	if p, err := exec.LookPath("tee"); err == nil {
		tl[Tee] = p
	}
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		tl[name] = p
	}
	write(Mkinitramfs, `echo "$FAKE_DIR/blob"; exit ${FAKE_MK:-0}`+"\n")
	// hostlock runs its command after --, like the real one.
	write(Hostlock, `while [ "$1" != -- ]; do shift; done; shift; exec "$@"`+"\n")
	write(Boot, `printf 'frame-bytes'; exit ${FAKE_BOOT:-0}`+"\n")
	write(Monitor, `cat; exit ${FAKE_MON:-0}`+"\n")
	write(Decode, `cat >/dev/null; case ${FAKE_DEC:-0} in 0) echo "verdict: PASS";; 1) echo "verdict: FAIL: x";; 3) echo "verdict: NO VERDICT: y";; esac; exit ${FAKE_DEC:-0}`+"\n")
	return tl
}

func TestRunFakeTools(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("SKIP: no sh")
	}
	tl := fakeTools(t)
	k := fixtureFile(t, "bzImage")
	for _, c := range []struct {
		env  map[string]string
		want int
		out  string
	}{
		{nil, ExitPass, "verdict: PASS"},
		{map[string]string{"FAKE_BOOT": "4", "FAKE_MON": "1", "FAKE_DEC": "1"}, ExitFail, "verdict: FAIL"},
		{map[string]string{"FAKE_MON": "1"}, ExitFail, "verdict: PASS"}, // the decoder's PASS is overruled
		{map[string]string{"FAKE_BOOT": "125", "FAKE_MON": "3", "FAKE_DEC": "3"}, ExitTool, "NO VERDICT"},
		{map[string]string{"FAKE_MK": "1"}, ExitTool, ""},
		{map[string]string{"FAKE_DEC": "3"}, ExitNoVerdict, "NO VERDICT"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		t.Setenv("FAKE_DIR", t.TempDir())
		save := filepath.Join(t.TempDir(), "run.ktstr")
		s := Spec{Kernel: k, Save: save}
		topo, err := s.Check()
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		res, err := Run(context.Background(), &s, tl, Reservation{ReserveCPUs, len(topo.CPUs)}, &out, &errb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Exit != c.want || !strings.Contains(out.String(), c.out) {
			t.Errorf("%v: exit %d (%s), out %q; want %d, %q; stderr %s", c.env, res.Exit, res.Why, out.String(), c.want, c.out, errb.String())
		}
		if c.env["FAKE_MK"] == "" {
			if b, _ := os.ReadFile(save); string(b) != "frame-bytes" {
				t.Errorf("%v: --save file has %q", c.env, b)
			}
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

// TestScriptFakeTools runs the --dry-run script with the same fake tools:
// pasted into a shell it prints the same verdict line, and its exit
// status is zero exactly when ktstr-run's is.
func TestScriptFakeTools(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("SKIP: no bash for the pipefail script")
	}
	tl := fakeTools(t)
	k := fixtureFile(t, "bzImage")
	for _, env := range []map[string]string{nil, {"FAKE_BOOT": "4", "FAKE_MON": "1", "FAKE_DEC": "1"}, {"FAKE_MON": "1"}, {"FAKE_DEC": "3"}, {"FAKE_MK": "1"}} {
		s := Spec{Kernel: k}
		topo, _ := s.Check()
		cmd := exec.Command(bash, "-c", s.Script(tl, Reservation{ReserveCPUs, len(topo.CPUs)}))
		cmd.Env = append(os.Environ(), "FAKE_DIR="+t.TempDir())
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, _ := cmd.Output()
		code := cmd.ProcessState.ExitCode()
		for k, v := range env {
			t.Setenv(k, v)
		}
		t.Setenv("FAKE_DIR", t.TempDir())
		var rout bytes.Buffer
		res, err := Run(context.Background(), &s, tl, Reservation{ReserveCPUs, len(topo.CPUs)}, &rout, &bytes.Buffer{}, nil)
		for k := range env {
			os.Unsetenv(k)
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != rout.String() || (code == 0) != (res.Exit == 0) {
			t.Errorf("%v: script printed %q exit %d; ktstr-run printed %q exit %d", env, out, code, rout.String(), res.Exit)
		}
	}
}

// TestCheckResolvesKernel: a kernel beside its vmlinux (the fixture and
// cache layout) gives ktstr-monitor that vmlinux; a source tree resolves
// to its bzImage, as ktstr-boot resolves it.
func TestCheckResolvesKernel(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(dir, "vmlinux"), []byte("v"), 0o644)
	s := Spec{Kernel: filepath.Join(dir, "bzImage")}
	if _, err := s.Check(); err != nil || s.Vmlinux != filepath.Join(dir, "vmlinux") {
		t.Errorf("beside its vmlinux: %v, vmlinux %q", err, s.Vmlinux)
	}
	s = Spec{Kernel: filepath.Join(dir, "bzImage"), Vmlinux: "/given/vmlinux"}
	if _, err := s.Check(); err != nil || s.Vmlinux != "/given/vmlinux" {
		t.Errorf("--vmlinux given: %v, vmlinux %q", err, s.Vmlinux)
	}
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "arch/x86/boot"), 0o755)
	os.WriteFile(filepath.Join(tree, "arch/x86/boot/bzImage"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(tree, "vmlinux"), []byte("v"), 0o644)
	empty := t.TempDir()
	s = Spec{Kernel: tree, KernelOptions: kernel.ResolveOptions{CacheDir: empty}}
	_, err := s.Check()
	defer s.Release()
	if err != nil || s.Kernel != filepath.Join(tree, "arch/x86/boot/bzImage") || s.Vmlinux != filepath.Join(tree, "vmlinux") {
		t.Errorf("source tree: %v, kernel %q, vmlinux %q", err, s.Kernel, s.Vmlinux)
	}
}
