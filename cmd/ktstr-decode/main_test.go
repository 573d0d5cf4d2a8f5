package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

const sample = "../../examples/sample.ktstr"

// decodeBin returns the ktstr-decode to test: $KTSTR_BIN/ktstr-decode when the
// Makefile built it, else one built once per test process (internal/testenv).
func decodeBin(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "ktstr-decode")
}

func TestMain(m *testing.M) { testenv.Main(m) }

type result struct {
	stdout, stderr string
	code           int
}

func runBin(t *testing.T, bin string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	r := testenv.Run(t, cmd)
	return result{r.Stdout, r.Stderr, r.Code}
}

func golden(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("../../pkg/decode/testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBinaryFileAndPipe(t *testing.T) {
	bin := decodeBin(t)
	stream, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		stdin  []byte
		args   []string
		golden string
	}{
		{"file text", nil, []string{"--stats", "--summary", sample}, "every_type.txt"},
		{"file json", nil, []string{"--json", "--summary", "--stats", sample}, "every_type.jsonl"},
		{"pipe text", stream, []string{"--summary", "--stats"}, "every_type.txt"},
		{"pipe json dash", stream, []string{"-j", "--summary", "--stats", "-"}, "every_type.jsonl"},
		{"filtered", stream, []string{"-t", "cgroup_metrics", "-t", "check_result,0x8001"}, "every_type_filtered.txt"},
		// Options after the file name are options, not files.
		{"options after file", nil, []string{sample, "--stats", "--summary"}, "every_type.txt"},
		{"options around file", nil, []string{"--json", sample, "--summary", "--stats"}, "every_type.jsonl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBin(t, bin, c.stdin, c.args...)
			if r.code != 0 || r.stdout != golden(t, c.golden) {
				t.Fatalf("exit %d, stderr %q, stdout differs from %s:\n%s", r.code, r.stderr, c.golden, r.stdout)
			}
			// The sample has one bad payload, reported on stderr.
			if !strings.Contains(r.stderr, "bad phase payload: invalid JSON at byte 26\n") {
				t.Fatalf("stderr %q lacks the payload diagnostic", r.stderr)
			}
		})
	}
	// Concatenated inputs are one stream.
	r := runBin(t, bin, stream, "-q", "--stats", sample, "-")
	frames := 0
	for d := wire.NewDecoder(bytes.NewReader(stream)); ; frames++ {
		if _, err := d.Next(); err != nil {
			break
		}
	}
	if r.code != 0 || !strings.HasPrefix(r.stdout, fmt.Sprintf("stats: %d bytes read, %d frames (%[1]d bytes)\n", 2*len(stream), 2*frames)) {
		t.Fatalf("concatenation: exit %d\n%s", r.code, r.stdout)
	}
}

func TestExitCodes(t *testing.T) {
	bin := decodeBin(t)
	stream, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(stream)
	corrupt[200] ^= 0x10
	var clean bytes.Buffer
	wire.NewEncoder(&clean).Encode(wire.Phase{Phase: wire.PhaseInitStarted})
	for _, c := range []struct {
		name   string
		stdin  []byte
		args   []string
		code   int
		stderr string
	}{
		{"clean strict", clean.Bytes(), []string{"--strict"}, 0, ""},
		{"corrupt not strict", corrupt, nil, 0, "ktstr-decode: corrupt stream at byte 164: CRC mismatch"},
		{"corrupt strict", corrupt, []string{"--strict", "-q"}, 1, "ktstr-decode: stream is corrupt: 1 corrupt regions (252 bytes skipped), 0 truncated frames, 1 bad payloads\n"},
		{"truncated strict", stream[:len(stream)-1], []string{"--strict", "-q"}, 1, "ktstr-decode: stream is corrupt: 0 corrupt regions (0 bytes skipped), 1 truncated frames, 1 bad payloads\n"},
		{"missing file", nil, []string{"/nonexistent/run.ktstr"}, 2, "ktstr-decode: open input: open /nonexistent/run.ktstr: no such file or directory\n"},
		{"directory", nil, []string{"."}, 2, "ktstr-decode: open input: . is a directory, not a stream file\n"},
		{"bad type", nil, []string{"--type", "bogus"}, 2, `ktstr-decode: --type: unknown message type "bogus"`},
		{"bad flag", nil, []string{"--bogus"}, 2, "ktstr-decode: flag provided but not defined: -bogus (see --help)\n"},
		// -v is not --version: data tools must not print a version as data.
		{"-v", nil, []string{"-v"}, 2, "flag provided but not defined: -v"},
		{"--version", nil, []string{"--version"}, 0, ""},
		// After --, a name that looks like an option is a file.
		{"-- then option-like file", nil, []string{"--", "--summary"}, 2, "open input: open --summary: no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBin(t, bin, c.stdin, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) || (c.stderr == "" && r.stderr != "") {
				t.Fatalf("exit %d (want %d), stderr %q (want it to contain %q)", r.code, c.code, r.stderr, c.stderr)
			}
		})
	}
}

// TestBinaryStreams writes one frame into ktstr-decode's stdin pipe and
// expects its line on stdout (a pipe, so not line-buffered by default)
// while the pipe stays open, then a second one, then a clean exit at EOF.
func TestBinaryStreams(t *testing.T) {
	bin := decodeBin(t)
	for _, args := range [][]string{nil, {"--json"}, {"--line-buffered"}} {
		cmd := exec.Command(bin, args...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewReader(stdout)
		enc := wire.NewEncoder(stdin)
		for _, s := range []string{"first frame", "second frame"} {
			if err := enc.Encode(wire.Log{Text: s}); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() { l, _ := lines.ReadString('\n'); got <- l }()
			select {
			case l := <-got:
				if !strings.Contains(l, s) {
					t.Fatalf("%v: got %q, want the %q frame", args, l, s)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%v: no line for a complete frame while stdin stays open: not streaming", args)
			}
		}
		// Half a frame: nothing more until EOF, then a truncation.
		var half [wire.HeaderSize]byte
		wire.PutHeader(half[:], &wire.Header{Type: wire.TypeLog}, []byte("x"))
		binary.LittleEndian.PutUint32(half[12:], 1)
		stdin.Write(half[:])
		stdin.Close()
		rest, _ := lines.ReadString(0)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(rest, "truncated frame at byte") {
			t.Fatalf("%v: after EOF got %q, want a truncation report", args, rest)
		}
	}
}

// TestVerdictExitCodes: --verdict's exit code is the run's verdict: 0
// pass, 1 fail, 3 no verdict (empty, cut short, no guest_exit), with one
// verdict line on stdout; --strict does not override it.
func TestVerdictExitCodes(t *testing.T) {
	bin := decodeBin(t)
	var good bytes.Buffer
	h := wire.NewEncoder(&good, wire.WithFlags(wire.FlagHost))
	g := wire.NewEncoder(&good)
	h.Encode(wire.VMStart{VMM: "ktstr-boot", Topology: "1n1l2c1t"})
	g.Encode(wire.GuestReady{Kernel: "6.12.117", Scheduler: "scx_simple", Scenario: "steady"})
	g.Encode(wire.CheckResult{Name: "starvation", Pass: true})
	hung := append([]byte(nil), good.Bytes()...) // the guest stopped here
	g.Encode(wire.GuestExit{Code: 0})
	h.Encode(wire.VMExit{Reason: "guest_exit", EndedBy: "poweroff"})
	stream, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		in    []byte
		args  []string
		code  int
		start string
	}{
		{"pass", good.Bytes(), []string{"-q", "--verdict"}, 0, "verdict: PASS kernel=6.12.117 scheduler=scx_simple scenario=steady topology=1n1l2c1t: "},
		{"fail", stream, []string{"-q", "--verdict", "--strict"}, 1, "verdict: FAIL "},
		{"empty", []byte{}, []string{"--verdict"}, 3, "verdict: NO VERDICT kernel=? scheduler=? scenario=? topology=?: empty stream"},
		{"hung", hung, []string{"-q", "--verdict"}, 3, "verdict: NO VERDICT kernel=6.12.117 scheduler=scx_simple scenario=steady topology=1n1l2c1t: no guest_exit and no vm_exit"},
		{"summary alone keeps exit 0", []byte{}, []string{"--summary"}, 0, "summary:"},
		{"json", good.Bytes(), []string{"-q", "-j", "--verdict"}, 0, `{"verdict":{"result":"pass"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBin(t, bin, c.in, c.args...)
			if r.code != c.code || !strings.HasPrefix(r.stdout, c.start) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and stdout starting %q", r.code, r.stdout, r.stderr, c.code, c.start)
			}
		})
	}
}
