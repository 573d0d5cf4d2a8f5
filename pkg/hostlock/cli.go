package hostlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
)

// Exit statuses of ktstr-hostlock itself (see man/ktstr-hostlock.1).
// Otherwise it exits with its command's status, or 128+n when signal n
// killed the command or interrupted the wait.
const (
	ExitUsage         = 2   // bad flags or arguments
	ExitUnsatisfiable = 3   // the request exceeds the host's (allowed) topology
	ExitBusy          = 75  // EX_TEMPFAIL: --no-wait/--print and not enough free
	ExitTimeout       = 124 // --timeout passed while waiting
	ExitLockError     = 125 // lock directory, lock file or topology problem
)

// Options is one ktstr-hostlock invocation, flags already parsed.
type Options struct {
	Request   Request
	Timeout   time.Duration // 0: wait forever
	Pin       bool
	Print     bool // print the reservation (non-blocking) and exit
	Hold      bool // print the reservation and hold it until signalled
	Status    bool
	JSON      bool
	LockDir   string // overrides $KTSTR_LOCK_DIR
	SysfsRoot string
	Argv      []string // the command after --
}

// ParseTimeout accepts a Go duration ("90s", "10m") or plain seconds
// ("1.5"); 0 means no limit.
// A value that is not a number (NaN, Inf), negative, above MaxTimeout, or
// non-zero but shorter than a millisecond (it would round to 0, "wait
// forever") is an error.
func ParseTimeout(s string) (time.Duration, error) {
	bad := func(why string) error {
		return fmt.Errorf("--timeout %q: %s; want 0 (no limit) or a duration from 1ms to %v, such as 90s, 10m or 1.5 (seconds)", s, why, MaxTimeout)
	}
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return 0, bad("not a finite number")
		case f < 0:
			return 0, bad("negative")
		case f > MaxTimeout.Seconds():
			return 0, bad("too long")
		}
		d = time.Duration(f * float64(time.Second))
		if f > 0 && d < time.Millisecond {
			return 0, bad("shorter than 1ms")
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, bad("not a duration, or out of range")
	case d < 0:
		return 0, bad("negative")
	case d > MaxTimeout:
		return 0, bad("too long")
	case d > 0 && d < time.Millisecond:
		return 0, bad("shorter than 1ms")
	}
	return d, nil
}

// MaxTimeout is the longest --timeout (a year): longer waits are a typo.
const MaxTimeout = 365 * 24 * time.Hour

// ParseCPUCap accepts "N" CPUs or "P%" of the allowed CPUs.
func ParseCPUCap(s string) (count, percent int, err error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		percent, err = strconv.Atoi(p)
		if err != nil || percent < 1 || percent > 100 {
			return 0, 0, fmt.Errorf("--cpu-cap %q: want a percentage from 1%% to 100%%", s)
		}
		return 0, percent, nil
	}
	count, err = strconv.Atoi(s)
	if err != nil || count < 1 {
		return 0, 0, fmt.Errorf("--cpu-cap %q: want a CPU count of at least 1, or a percentage such as 30%%", s)
	}
	return count, 0, nil
}

// Main runs one invocation and returns ktstr-hostlock's exit status and,
// when not nil, the one-line message to show on stderr.
func Main(o Options, stdin, stdout, stderr *os.File) (int, error) {
	top, err := hosttopo.Read(o.SysfsRoot)
	if err != nil {
		return ExitLockError, err
	}
	getenv := os.Getenv
	if o.LockDir != "" {
		getenv = func(k string) string {
			if k == EnvLockDir {
				return o.LockDir
			}
			return os.Getenv(k)
		}
	}
	dir, err := resolveDir(getenv)
	if err != nil {
		return ExitLockError, err
	}
	l := &Locker{Dir: dir, Topo: top}
	if o.Status {
		st := l.Status()
		if o.JSON {
			err = st.WriteJSON(stdout)
		} else {
			err = st.WriteText(stdout)
		}
		return outputStatus(err)
	}

	// Signals: registered before waiting so an interrupt while queued
	// exits 128+n cleanly, and kept registered while the command runs so
	// none is lost in between.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, ForwardedSignals...)
	defer signal.Stop(sigs)
	// No timer and no goroutine unless the request has to wait: the
	// uncontended run stays as cheap as flock(1) (see bench/hostlock.sh).
	start := time.Now()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var caught os.Signal
	var timer *time.Timer
	acquired := make(chan struct{})
	watched := make(chan struct{}) // closed when the watcher is gone
	r := o.Request
	watching := false
	r.OnWait = func() {
		watching = true
		if os.Getenv(EnvCPUs) != "" {
			fmt.Fprintf(stderr, "ktstr-hostlock: warning: waiting inside a reservation (%s is set); a nested request can wait for its own parent until --timeout\n", EnvCPUs)
		}
		if o.Timeout > 0 {
			timer = time.AfterFunc(time.Until(start.Add(o.Timeout)), func() { cancel(context.DeadlineExceeded) })
		}
		go func() {
			defer close(watched)
			select {
			case caught = <-sigs:
				cancel(context.Canceled)
			case <-acquired:
			}
		}()
	}
	if o.Print {
		r.NoWait = true
	}
	switch {
	case o.Hold:
		r.Command = "(--hold)"
	case len(o.Argv) > 0:
		r.Command = strings.Join(o.Argv, " ")
	}
	res, err := l.Acquire(ctx, r)
	close(acquired)
	if timer != nil {
		timer.Stop()
	}
	if watching {
		<-watched // the watcher is gone, so caught is settled
	}
	if err == nil && caught != nil {
		// Interrupted just as the reservation came through: honour it.
		res.Release()
		return 128 + int(caught.(syscall.Signal)), nil
	}
	if err != nil {
		var busy *BusyError
		var tmo *TimeoutError
		var uns *UnsatisfiableError
		var le *LockError
		switch {
		case errors.As(err, &busy):
			return ExitBusy, err
		case errors.As(err, &tmo):
			return ExitTimeout, err
		case errors.As(err, &uns):
			return ExitUnsatisfiable, err
		case errors.As(err, &le):
			return ExitLockError, err
		case errors.Is(err, context.Canceled) && caught != nil:
			return 128 + int(caught.(syscall.Signal)), nil
		}
		return 1, err
	}
	defer res.Release()
	switch {
	case o.Print:
		return outputStatus(printReservation(stdout, res, o.JSON))
	case o.Hold:
		if err := printReservation(stdout, res, o.JSON); err != nil {
			return outputStatus(err)
		}
		<-sigs
		return 0, nil
	}
	return runCommand(res, o.Argv, o.Pin, sigs, stdin, stdout, stderr)
}

// outputStatus turns the result of writing --print's, --hold's or
// --status's output into an exit status: output that could not be written
// (a full disk, a closed pipe) is a failure, never a 0.
func outputStatus(err error) (int, error) {
	if err != nil {
		return 1, fmt.Errorf("write output: %w", err)
	}
	return 0, nil
}

func printReservation(w io.Writer, res *Reservation, asJSON bool) error {
	if asJSON {
		b, _ := json.Marshal(map[string]any{
			"cpus": cpulist.Format(res.CPUs), "llcs": cpulist.Format(res.LLCs), "numa_nodes": cpulist.Format(res.Nodes),
			"cpu_ids": nonNil(res.CPUs), "llc_ids": nonNil(res.LLCs), "node_ids": nonNil(res.Nodes), "request": res.Request,
		})
		_, err := fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, strings.Join(res.Env(), "\n"))
	return err
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}
