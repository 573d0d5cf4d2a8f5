package hostlock

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress shows, on a terminal, how long a request has been waiting. It
// redraws one line once a second from a timer; it never looks at locks.
type progress struct {
	w    io.Writer
	quit chan struct{}
	wg   sync.WaitGroup
}

func startProgress(w io.Writer, want string, start time.Time) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, quit: make(chan struct{})}
	fmt.Fprintf(w, "ktstr-hostlock: waiting for %s", want)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\033[Kktstr-hostlock: waiting for %s: %s", want, time.Since(start).Round(time.Second))
			}
		}
	}()
	return p
}

func (p *progress) stop(ok bool) {
	if p == nil {
		return
	}
	close(p.quit)
	p.wg.Wait()
	if ok {
		fmt.Fprintln(p.w, " - acquired")
	} else {
		fmt.Fprintln(p.w)
	}
}
