package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/runwatch"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Evidence of failed lab runs.
//
// Every lab run that fails (a reference boot that timed out, exited
// non-zero or wrote frames but no guest_exit; an L1 that did not boot or
// stopped answering; a caller's own check on the outputs) keeps its
// console, stream and QEMU stderr in a directory of its own under
// EvidenceRoot, and the failure message names that directory and shows
// the console's last lines. Callers never write these files themselves:
// they call KeepEvidence (or Result.KeepEvidence, Nested.KeepEvidence, or
// `ktstr-lab keep-evidence` from a script), so the layout, the size bound
// and the pruning live here only.
//
// Layout: ROOT/<UTC time>-<name>-<pid>-<random>/ holding why.txt (the failure, the
// time, the QEMU command line), console.txt, stream.ktstr, qemu-stderr.txt
// and any extra files the caller names. Each file keeps at most
// EvidenceFileMax bytes (its tail, which is where a failure shows); the
// root keeps the newest EvidenceKeep directories, older ones are removed
// whenever a new one is written.

// EvidenceEnv names the environment variable that moves the evidence root.
const EvidenceEnv = "KTSTR_EVIDENCE_DIR"

// DefaultEvidenceRoot is where evidence goes without $KTSTR_EVIDENCE_DIR.
// /var/tmp rather than /tmp or the checkout: CI runs in a fresh clone that
// may be deleted after the run, /tmp is often a tmpfs cleared on reboot,
// and /var/tmp survives both (FHS: "preserved between system reboots"), so
// a later session on the same machine can read what failed.
const DefaultEvidenceRoot = "/var/tmp/ktstr-evidence"

// EvidenceKeep is how many evidence directories the root keeps.
const EvidenceKeep = 40

// EvidenceFileMax bounds each kept file (its last bytes are kept): 40
// directories of at most four such files stay under 1.3 GiB even in the
// worst case, and a real failed run is a few hundred KiB.
const EvidenceFileMax = 8 << 20

// EvidenceTailLines is how many console lines a failure message shows.
const EvidenceTailLines = 25

// EvidenceRoot returns $KTSTR_EVIDENCE_DIR, or DefaultEvidenceRoot.
func EvidenceRoot() string {
	if d := os.Getenv(EvidenceEnv); d != "" {
		return d
	}
	return DefaultEvidenceRoot
}

// EvidenceFile is one file to keep: Name inside the evidence directory,
// and its contents either as Data or copied from Path.
type EvidenceFile struct {
	Name string
	Data []byte
	Path string
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// KeepEvidence writes files into a new directory under EvidenceRoot with
// why.txt saying why, prunes the root to EvidenceKeep directories and
// returns the new directory. Files that cannot be read are noted in
// why.txt, not fatal: the rest is still worth keeping.
func KeepEvidence(name, why string, files ...EvidenceFile) (string, error) {
	root := EvidenceRoot()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("evidence: %w (set %s to a writable directory)", err, EvidenceEnv)
	}
	name = strings.Trim(unsafeName.ReplaceAllString(name, "_"), "_.")
	if name == "" {
		name = "run"
	}
	if len(name) > 80 {
		name = name[:80]
	}
	stamp := time.Now().UTC().Format("20060102T150405.000Z")
	dir, err := os.MkdirTemp(root, fmt.Sprintf("%s-%s-%d-", stamp, name, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("evidence: %w", err)
	}
	os.Chmod(dir, 0o755) // readable by a later session of another user
	var notes []string
	for _, f := range files {
		fn := filepath.Base(f.Name)
		if fn == "." || fn == "/" || fn == "why.txt" {
			notes = append(notes, fmt.Sprintf("skipped a file named %q", f.Name))
			continue
		}
		if err := writeBounded(filepath.Join(dir, fn), f); err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", fn, err))
		}
	}
	text := fmt.Sprintf("%s\n\nkept %s by pid %d\n", strings.TrimSpace(why), time.Now().UTC().Format(time.RFC3339), os.Getpid())
	for _, n := range notes {
		text += "note: " + n + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "why.txt"), []byte(text), 0o644); err != nil {
		return dir, fmt.Errorf("evidence: %w", err)
	}
	pruneEvidence(root, EvidenceKeep)
	return dir, nil
}

// writeBounded writes f's last EvidenceFileMax bytes to path. A source that
// is not a regular file (a FIFO, a device) is refused rather than read
// without end.
func writeBounded(path string, f EvidenceFile) error {
	data := f.Data
	if f.Path != "" {
		src, err := openNoBlock(f.Path)
		if err != nil {
			return err
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", f.Path)
		}
		if st.Size() > EvidenceFileMax {
			if _, err := src.Seek(st.Size()-EvidenceFileMax, io.SeekStart); err != nil {
				return err
			}
		}
		if data, err = io.ReadAll(io.LimitReader(src, EvidenceFileMax)); err != nil {
			return err
		}
	}
	if len(data) > EvidenceFileMax {
		data = data[len(data)-EvidenceFileMax:]
	}
	return os.WriteFile(path, data, 0o644)
}

// pruneEvidence removes all but the newest keep directories of root (by
// name, which starts with the UTC time).
func pruneEvidence(root string, keep int) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) > 8 && e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			dirs = append(dirs, e.Name())
		}
	}
	sort.Strings(dirs)
	for len(dirs) > keep {
		os.RemoveAll(filepath.Join(root, dirs[0]))
		dirs = dirs[1:]
	}
}

// EvidenceMessage is the text a failure shows: where the evidence is (or
// why it could not be kept) and the console's last lines.
func EvidenceMessage(dir string, keepErr error, console []byte) string {
	var b strings.Builder
	if keepErr != nil {
		fmt.Fprintf(&b, "evidence NOT kept: %v", keepErr)
	} else {
		fmt.Fprintf(&b, "evidence kept in %s", dir)
	}
	if f := runwatch.FirstTrouble(console); f != "" {
		fmt.Fprintf(&b, "; first fault on the console: %s", f)
	}
	t := runwatch.TailLines(console, EvidenceTailLines)
	if t == "" {
		b.WriteString("; the console is empty")
	} else {
		fmt.Fprintf(&b, "; console's last lines:\n%s", t)
	}
	return b.String()
}

// KeepEvidence keeps r's console, stream, QEMU stderr and command line
// under name (see the package's evidence notes) and returns the message
// for the failure: the directory and the console's last lines.
func (r *Result) KeepEvidence(name, why string, extra ...EvidenceFile) string {
	files := append([]EvidenceFile{
		{Name: "console.txt", Data: r.Console},
		{Name: "stream.ktstr", Data: r.Stream},
		{Name: "qemu-stderr.txt", Data: r.Stderr},
	}, extra...)
	why = fmt.Sprintf("%s\n\nQEMU exit %d, timed out %v, wall %v, %d stream bytes\nQEMU: %s",
		why, r.ExitCode, r.TimedOut, r.Wall.Round(time.Millisecond), len(r.Stream), ShellQuote(r.Args))
	dir, err := KeepEvidence(name, why, files...)
	return EvidenceMessage(dir, err, r.Console)
}

// KeepEvidence keeps L1's console and its QEMU's stderr (and extra) under
// name and returns the failure message.
func (n *Nested) KeepEvidence(name, why string, extra ...EvidenceFile) string {
	var con, errb []byte
	var args []string
	if n.proc != nil {
		con, errb, args = n.proc.ConsoleBytes(), n.proc.StderrBytes(), append([]string{n.proc.QEMU}, n.proc.Args...)
	}
	files := append([]EvidenceFile{
		{Name: "l1-console.txt", Data: con},
		{Name: "l1-qemu-stderr.txt", Data: errb},
	}, extra...)
	dir, err := KeepEvidence(name, why+"\n\nL1 QEMU: "+ShellQuote(args), files...)
	return EvidenceMessage(dir, err, con)
}

// guestExitIn reports whether stream holds a guest_exit frame (a valid
// one: CRC-checked by the decoder) and how many frames it holds.
func guestExitIn(stream []byte) (found bool, frames int) {
	d := wire.NewDecoder(bytes.NewReader(stream))
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return found, frames
		}
		var ce *wire.CorruptError
		var te *wire.TruncatedError
		if errors.As(err, &ce) || errors.As(err, &te) {
			continue // the decoder resynchronises past it
		}
		if err != nil {
			return found, frames
		}
		frames++
		if f.Type == wire.TypeGuestExit {
			found = true
		}
	}
}

// countingWriter counts the bytes passed to w (the stream's progress for
// the hang watch).
type countingWriter struct {
	w io.Writer
	n atomic.Uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(uint64(len(p)))
	return c.w.Write(p)
}

// watchReference adds a bounded console tail to a reference boot's
// console and starts the hang watch on its stream (when opts.Log and
// opts.HangWarn ask for one). The watch counts stream bytes: QEMU hands
// the lab whole frames, and no byte for HangWarn is the same silence.
func watchReference(opts *ReferenceOptions, console io.Writer, stream *countingWriter) (io.Writer, *runwatch.Watch) {
	if opts.Log == nil || opts.HangWarn <= 0 {
		return console, nil
	}
	ct := runwatch.NewConsoleTail(0)
	if console != nil {
		console = io.MultiWriter(console, ct)
	} else {
		console = ct
	}
	return console, runwatch.Start(runwatch.Options{
		Quiet: opts.HangWarn, Log: opts.Log, Prefix: "lab: " + or(opts.Name, "reference"),
		Console: ct, Frames: stream.n.Load, Unit: "stream bytes",
	})
}

// finishReference judges a finished reference boot: counts its frames,
// reports on opts.Log a run that wrote frames but no guest_exit, and keeps
// the evidence of a failed run (timeout, QEMU failure, no guest_exit),
// unless the caller ended it by cancelling ctx.
func finishReference(ctx context.Context, opts *ReferenceOptions, r *Result) {
	r.GuestExit, r.Frames = guestExitIn(r.Stream)
	noExit := r.Frames > 0 && !r.GuestExit
	if noExit && !r.TimedOut {
		how := fmt.Sprintf("QEMU exited %d after %v", r.ExitCode, r.Wall.Round(100*time.Millisecond))
		runwatch.Ended(opts.Log, "lab: "+or(opts.Name, "reference"), how, uint64(r.Frames), r.Console)
	}
	if ctx.Err() != nil && !r.TimedOut {
		return // the caller stopped it: not a failure of the run
	}
	if r.TimedOut || r.ExitCode != 0 || noExit {
		err := r.Err() // without evidence yet: the reason alone
		why, _, _ := strings.Cut(err.Error(), "; console tail:")
		r.Evidence = r.KeepEvidence(or(opts.Name, "reference"), why)
	}
}

// bootFailure keeps the evidence of an L1 that did not boot to its agent
// and returns err with the evidence message added.
func (n *Nested) bootFailure(err error) error {
	return fmt.Errorf("%w; %s", err, n.KeepEvidence("nested-l1-boot", err.Error()))
}

// ReadTail returns the last n bytes of the regular file at path (nil when
// it cannot be read or is not a regular file).
func ReadTail(path string, n int64) []byte {
	f, err := openNoBlock(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if st.Size() > n {
		if _, err := f.Seek(st.Size()-n, io.SeekStart); err != nil {
			return nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return b
}

// openNoBlock opens path for reading without blocking on a FIFO with no
// writer (the caller then refuses anything but a regular file).
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// Failer is the part of testing.TB that KeepOnFailure needs.
type Failer interface {
	Failed() bool
	Cleanup(func())
	Name() string
	Logf(format string, args ...any)
}

// KeepOnFailure keeps r's evidence when the test t fails after the boot
// (a check on the stream, an exit code): one line in the test, right after
// Reference, covers every later assertion. A run Reference already judged
// failed has its evidence kept once.
func KeepOnFailure(t Failer, r *Result) {
	t.Cleanup(func() {
		if t.Failed() && r.Evidence == "" {
			t.Logf("%s", r.KeepEvidence(t.Name(), "test "+t.Name()+" failed after this boot (see its log)"))
		}
	})
}
