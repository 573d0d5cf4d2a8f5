package term

import (
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
)

// Session puts fd in raw mode, starts the guard child (guard.go) that
// restores it if this process dies uncatchably (a panic in another
// goroutine, SIGKILL), runs body, and restores the terminal on every way
// out: body returning, body panicking (restored, then the panic
// goes on), or SIGTERM, SIGINT or SIGHUP arriving (restored, then the
// signal is re-raised with its default action, so the exit status still
// says which signal ended the process, unless body returns first after
// stop closes). body learns of the signal through stop and has a moment to
// clean up; the terminal is already sane by then.
func Session(fd int, body func(stop <-chan struct{}) error) (err error) {
	// Catch the signals before the terminal goes raw: one arriving in
	// between would otherwise end the process with the terminal left raw.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)
	r, err := makeRaw(fd)
	if err != nil {
		return err
	}
	defer r.Restore()
	if err := r.Guard(); err != nil {
		r.Restore()
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			r.Restore()
			panic(p)
		}
	}()

	stop := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			r.Restore()
			close(stop)
			// Give body a short moment, then die by the signal.
			select {
			case <-done:
			case <-time.After(SignalGrace):
				signal.Reset(s)
				unix.Kill(os.Getpid(), s.(unix.Signal))
			}
		case <-done:
		}
	}()
	err = body(stop)
	return err
}

// SignalGrace is how long Session lets body wind down after a signal
// before the signal's default action ends the process.
const SignalGrace = 2 * time.Second
