package runwatch

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultQuiet is the silence after which a Watch warns: long enough that
// a healthy guest (frames at least every few seconds once the init runs,
// its first frame within seconds of boot on KVM) never trips it, short
// enough that a hang shows well before a 60 s timeout.
const DefaultQuiet = 10 * time.Second

// Options configures a Watch.
type Options struct {
	// Quiet is the silence that earns a warning, repeated for every
	// further Quiet of silence (0 or less: no Watch).
	Quiet time.Duration
	// Log receives the warnings (nil: no Watch).
	Log io.Writer
	// Prefix starts every line ("ktstr-boot").
	Prefix string
	// Console supplies the last console line (nil: none shown).
	Console *ConsoleTail
	// Frames returns how many frames have arrived so far; any increase
	// counts as a frame.
	Frames func() uint64
	// Unit names what Frames counts in messages (default "frames"; the
	// QEMU paths count "stream bytes").
	Unit string
}

// Watch warns on Log while no frame arrives. Start it when the guest
// starts, Stop it when the run ends.
type Watch struct {
	o       Options
	start   time.Time
	mu      sync.Mutex
	last    uint64    // frame count at the last change
	lastAt  time.Time // when the count last changed (or start)
	warned  int       // warnings in the current silence
	stop    chan struct{}
	stopped sync.Once
	done    chan struct{}
}

// Start begins watching; it returns nil (a valid, inert Watch) when
// o.Quiet <= 0, o.Log or o.Frames is nil.
func Start(o Options) *Watch {
	if o.Quiet <= 0 || o.Log == nil || o.Frames == nil {
		return nil
	}
	w := newWatch(o, time.Now())
	tick := o.Quiet / 10
	if tick > time.Second {
		tick = time.Second
	}
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-t.C:
				w.check(now)
			}
		}
	}()
	return w
}

func newWatch(o Options, now time.Time) *Watch {
	if o.Unit == "" {
		o.Unit = "frames"
	}
	return &Watch{o: o, start: now, lastAt: now, stop: make(chan struct{}), done: make(chan struct{})}
}

// Stop ends the watch and waits for its goroutine; safe on nil and twice.
func (w *Watch) Stop() {
	if w == nil {
		return
	}
	w.stopped.Do(func() { close(w.stop) })
	<-w.done
}

// check is one tick: it notes new frames and warns once per Quiet of
// silence.
func (w *Watch) check(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.o.Frames()
	if n != w.last {
		if w.warned > 0 {
			fmt.Fprintf(w.o.Log, "%s: frames again after %s of silence (%d %s so far)\n",
				w.o.Prefix, round(now.Sub(w.lastAt)), n, w.o.Unit)
		}
		w.last, w.lastAt, w.warned = n, now, 0
		return
	}
	silent := now.Sub(w.lastAt)
	if silent < time.Duration(w.warned+1)*w.o.Quiet {
		return
	}
	w.warned++
	what := fmt.Sprintf("no frame from the guest for %s (%d %s so far, %s after start)", round(silent), n, w.o.Unit, round(now.Sub(w.start)))
	if n == 0 {
		what = fmt.Sprintf("no frame from the guest yet, %s after start", round(silent))
	}
	fmt.Fprintf(w.o.Log, "%s: %s; last console line: %s\n", w.o.Prefix, what, w.lastLine())
}

func (w *Watch) lastLine() string {
	if w.o.Console == nil {
		return "(console not watched)"
	}
	if l := w.o.Console.LastLine(); l != "" {
		return l
	}
	return "(none yet)"
}

func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// EndedLines is how many console lines Ended shows.
const EndedLines = 15

// Ended reports on log that a run ended without a guest_exit frame: how
// it ended (how, e.g. "QEMU exited 0 after 6.1s"), how many frames had
// arrived, and the console's last EndedLines lines. Callers call it only
// for runs of a frame-writing init; a run with no frames at all says so.
func Ended(log io.Writer, prefix, how string, frames uint64, console []byte) {
	if log == nil {
		return
	}
	t := TailLines(console, EndedLines)
	if t == "" {
		t = "(empty)"
	}
	first := ""
	if f := FirstTrouble(console); f != "" {
		first = "; first fault on the console: " + f
	}
	fmt.Fprintf(log, "%s: the run ended without a guest_exit frame: %s, %d frames; the guest's verdict is missing%s. Console's last lines:\n%s\n",
		prefix, how, frames, first, t)
}
