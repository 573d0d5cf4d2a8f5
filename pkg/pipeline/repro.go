package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktstr-go/ktstr/pkg/probe"
	"github.com/ktstr-go/ktstr/pkg/repro"
)

// Repro is what --auto-repro did after the first run.
type Repro struct {
	Why     string        // the scheduler's failure; "" when there was none (no second boot)
	Funcs   []string      // kernel functions from the failure's stack traces, probed too
	Stream  string        // the second boot's saved stream ("" when removed)
	Result  *Result       // the second run
	First   time.Duration // the first run's wall time
	Second  time.Duration // the second's
	Skipped string        // why no second boot ran, when it did not
}

// ReproPath is where the second boot's stream goes when the first is
// saved to save: FILE.ktstr -> FILE.repro.ktstr, FILE -> FILE.repro.ktstr.
func ReproPath(save string) string {
	return strings.TrimSuffix(save, ".ktstr") + ".repro.ktstr"
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.b...)
}

// RunAutoRepro is Run, and when the run fails because of the scheduler
// (pkg/repro: an error exit, a stall, its death) a second run of the same
// kernel, scheduler, scenario and topology with the kernel command line
// also holding the ktstr.probe key (the functions named in the failure's
// stack traces, from the scheduler's exit dump and the console). The
// second stream is saved beside the first (ReproPath) or to a temporary
// file, and ktstr-decode --timeline prints its timeline on stdout. The
// first run's Result is the run's result; the second only informs. The
// second run's verdict line and diagnostics go to stderr.
func RunAutoRepro(ctx context.Context, s *Spec, t Tools, r Reservation, stdout, stderr io.Writer, sigs <-chan os.Signal) (*Result, *Repro, error) {
	rep := &Repro{}
	first := *s
	var cleanup []string
	defer func() {
		for _, p := range cleanup {
			os.Remove(p)
		}
	}()
	if first.Save == "" {
		p, err := tempStream()
		if err != nil {
			return nil, nil, err
		}
		first.Save = p
		cleanup = append(cleanup, p)
	}
	// The console: from its file, or from what the tools write to stderr.
	var con *tail
	errw := stderr
	if first.Console == "" {
		con = &tail{max: 8 << 20}
		errw = io.MultiWriter(stderr, con)
	}
	// A signal the user sent ends the run; it must not start a second.
	var interrupted atomic.Bool
	fwd, stopFwd, fwdDone := make(chan os.Signal, 4), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(fwdDone)
		for {
			select {
			case <-stopFwd:
				return
			case sig, ok := <-sigs:
				if !ok {
					close(fwd)
					return
				}
				interrupted.Store(true)
				select {
				case fwd <- sig:
				default:
				}
			}
		}
	}()
	t0 := time.Now()
	res, err := Run(ctx, &first, t, r, stdout, errw, fwd)
	rep.First = time.Since(t0)
	close(stopFwd) // the second run reads sigs itself
	<-fwdDone
	if err != nil || res.Exit != ExitFail {
		return res, rep, err
	}
	if interrupted.Load() || ctx.Err() != nil {
		rep.Skipped = "the run was interrupted"
		return res, rep, nil
	}
	f, err := os.Open(first.Save)
	if err != nil {
		rep.Skipped = fmt.Sprintf("cannot read the run's stream: %v", err)
		return res, rep, nil
	}
	fail, err := repro.Inspect(f)
	f.Close()
	if err != nil {
		rep.Skipped = err.Error()
		return res, rep, nil
	}
	if fail.Why == "" {
		rep.Skipped = "the failure is not the scheduler's (no error exit, stall or death in the stream)"
		return res, rep, nil
	}
	rep.Why = fail.Why
	var console []byte
	if con != nil {
		console = con.bytes()
	} else if b, err := os.ReadFile(first.Console); err == nil {
		console = b
	}
	rep.Funcs = repro.Funcs(fail.Text, console)

	second := *s
	second.JSON = false
	second.Append = strings.TrimSpace(s.Append + " " + probe.FormatList(rep.Funcs))
	if s.Save != "" {
		second.Save = ReproPath(s.Save)
	} else {
		p, err := tempStream()
		if err != nil {
			return res, rep, err
		}
		second.Save = p
		cleanup = append(cleanup, p)
	}
	if s.Console != "" {
		second.Console = strings.TrimSuffix(s.Console, ".console") + ".repro.console"
	}
	fmt.Fprintf(stderr, "ktstr-run: auto-repro: %s; booting again with %s\n", rep.Why, probe.FormatList(rep.Funcs))
	t1 := time.Now()
	rep.Result, err = Run(ctx, &second, t, r, stderr, stderr, sigs)
	rep.Second = time.Since(t1)
	if err != nil {
		return res, rep, fmt.Errorf("auto-repro run: %w", err)
	}
	if s.Save != "" {
		rep.Stream = second.Save
	}
	dec := exec.CommandContext(ctx, t[Decode], "--timeline", "--timeline-events", "60", second.Save)
	dec.Stdout, dec.Stderr = stdout, stderr
	if s.JSON {
		dec.Stdout = stderr // stdout holds the verdict's JSON record only
	}
	if err := dec.Run(); err != nil {
		fmt.Fprintf(stderr, "ktstr-run: auto-repro: %s --timeline: %v\n", Decode, err)
	}
	where := "not kept (use --save FILE to keep it)"
	if rep.Stream != "" {
		where = "saved to " + rep.Stream
	}
	fmt.Fprintf(stderr, "ktstr-run: auto-repro: second boot took %.1f s (first run %.1f s; %.2fx); its stream is %s; its verdict: %s\n",
		rep.Second.Seconds(), rep.First.Seconds(), rep.Second.Seconds()/rep.First.Seconds(), where, rep.Result.Why)
	return res, rep, nil
}

func tempStream() (string, error) {
	f, err := os.CreateTemp("", "ktstr-run-*.ktstr")
	if err != nil {
		return "", fmt.Errorf("auto-repro needs a file for the stream: %w", err)
	}
	f.Close()
	return f.Name(), nil
}
