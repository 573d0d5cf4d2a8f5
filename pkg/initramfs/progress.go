package initramfs

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Progress prints a one-line progress report to a terminal for phases that
// take longer than Delay. A nil *Progress does nothing.
type Progress struct {
	W     io.Writer
	Delay time.Duration

	mu      sync.Mutex
	name    string
	total   int64
	done    atomic.Int64
	stop    chan struct{}
	stopped chan struct{}
}

// NewProgress reports to w after a one-second delay.
func NewProgress(w io.Writer) *Progress { return &Progress{W: w, Delay: time.Second} }

// Phase starts a phase of total bytes.
func (p *Progress) Phase(name string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.total = name, total
	p.done.Store(0)
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go p.loop(p.stop, p.stopped, name, total)
}

// Set records bytes done in the current phase.
func (p *Progress) Set(n int64) {
	if p != nil {
		p.done.Store(n)
	}
}

// Done ends the current phase and clears the line if one was printed.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	stop, stopped := p.stop, p.stopped
	p.stop = nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
}

func (p *Progress) loop(stop, stopped chan struct{}, name string, total int64) {
	defer close(stopped)
	start := time.Now()
	timer := time.NewTimer(p.Delay)
	defer timer.Stop()
	select {
	case <-stop:
		return
	case <-timer.C:
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		d := p.done.Load()
		fmt.Fprintf(p.W, "\rktstr-mkinitramfs: %s: %.1f / %.1f MB (%.0fs)\033[K", name, float64(d)/1e6, float64(total)/1e6, time.Since(start).Seconds())
		select {
		case <-stop:
			fmt.Fprint(p.W, "\r\033[K")
			return
		case <-tick.C:
		}
	}
}
