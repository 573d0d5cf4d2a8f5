package hostlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/hosttopo"
	"golang.org/x/sys/unix"
)

// Locker acquires reservations in one lock directory for one topology.
type Locker struct {
	Dir  string
	Topo *hosttopo.Topology
}

// BusyError is returned with Request.NoWait when not enough is free; it
// names the holders. ktstr-hostlock exits 75 (EX_TEMPFAIL) on it.
type BusyError struct {
	Want    string
	Free    int
	Holders []string // "LLC 0: exclusive, pid 123 (cmd) since 12:00:01"
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("busy: want %s, only %d free now", e.Want, e.Free) + listHolders("; ", e.Holders)
}

// listHolders joins at most four holders after sep.
func listHolders(sep string, h []string) string {
	if len(h) == 0 {
		return ""
	}
	more := ""
	if len(h) > 4 {
		more = fmt.Sprintf("; and %d more (see ktstr-hostlock --status)", len(h)-4)
		h = h[:4]
	}
	return sep + strings.Join(h, "; ") + more
}

// TimeoutError is returned when the context's deadline passes while
// waiting. ktstr-hostlock exits 124 on it.
type TimeoutError struct {
	Want    string
	Waited  time.Duration
	Holders []string
}

func (e *TimeoutError) Error() string {
	s := fmt.Sprintf("timed out after %s waiting for %s", e.Waited.Round(time.Millisecond), e.Want)
	return s + listHolders("; held: ", e.Holders) + " (raise --timeout, or see ktstr-hostlock --status)"
}

// heldUnit is a unit whose flocks this process holds, one open file
// description per step.
type heldUnit struct {
	u     *unit
	files []*os.File
}

func (h *heldUnit) close() {
	for _, f := range h.files {
		f.Close()
	}
	h.files = nil
}

func releaseAll(hs []*heldUnit) {
	for _, h := range hs {
		h.close()
	}
}

func flockRetry(fd int, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

func lockHow(excl, nb bool) int {
	how := unix.LOCK_SH
	if excl {
		how = unix.LOCK_EX
	}
	if nb {
		how |= unix.LOCK_NB
	}
	return how
}

// tryUnit takes every step of u without blocking; ok is false when one
// is busy (nothing is then held).
func (l *Locker) tryUnit(u *unit) (*heldUnit, bool, error) {
	h := &heldUnit{u: u}
	for _, s := range u.steps {
		f, err := openLockFile(l.Dir, s.name)
		if err != nil {
			h.close()
			return nil, false, err
		}
		h.files = append(h.files, f)
		if err := flockRetry(int(f.Fd()), lockHow(s.excl, true)); err != nil {
			h.close()
			if err == unix.EWOULDBLOCK {
				return nil, false, nil
			}
			return nil, false, lockErr("flock %s: %w", f.Name(), err)
		}
	}
	return h, true, nil
}

// tryPass tries the candidates without blocking, node by node, stopping
// as soon as one node alone holds enough (LLCs: at the first unit that
// completes it; CPUs and CPUCap: after the node's full pass, so pick can
// pack). It returns what it holds and the candidates it found busy.
func (l *Locker) tryPass(cands []*unit, need int, kind Kind) (got []*heldUnit, busy []*unit, err error) {
	nodeW := 0
	for i, u := range cands {
		if i > 0 && u.node != cands[i-1].node {
			if nodeW >= need {
				return got, busy, nil
			}
			nodeW = 0
		}
		h, ok, err := l.tryUnit(u)
		if err != nil {
			releaseAll(got)
			return nil, nil, err
		}
		if !ok {
			busy = append(busy, u)
			continue
		}
		got = append(got, h)
		nodeW += u.weight
		if kind == LLCs && nodeW >= need {
			return got, busy, nil
		}
	}
	return got, busy, nil
}

func weightOf(hs []*heldUnit) int {
	w := 0
	for _, h := range hs {
		w += h.u.weight
	}
	return w
}

// Acquire reserves what r asks for. Unless r.NoWait, it waits (see
// doc.go: a FIFO queue lock, then blocking flocks on every busy
// candidate) until enough is free or ctx is done; a deadline passing (or
// a cancellation whose cause is context.DeadlineExceeded) gives
// *TimeoutError. The reservation's lock files are open O_CLOEXEC;
// pass Files to a child to let it keep them.
func (l *Locker) Acquire(ctx context.Context, r Request) (*Reservation, error) {
	cands, need, err := plan(l.Topo, r)
	if err != nil {
		return nil, err
	}
	want := describeWant(r, need)
	start := time.Now()
	if r.NoWait {
		got, busy, err := l.tryPass(cands, need, r.Kind)
		if err != nil {
			return nil, err
		}
		sel, rest := pick(got, need, r.Kind)
		releaseAll(rest)
		if sel == nil {
			return nil, &BusyError{Want: want, Free: weightOf(got), Holders: l.holdersOf(busy)}
		}
		return l.finish(sel, r)
	}

	// Queue: one requester at a time decides; the rest wait in the
	// kernel's FIFO chain on queue.lock.
	q, err := openLockFile(l.Dir, queueFile)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var prog *progress
	waiting := false
	onWait := func() {
		if !waiting && r.OnWait != nil {
			r.OnWait()
		}
		waiting = true
	}
	if err := flockRetry(int(q.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
		onWait()
		prog = startProgress(r.Progress, want+" (queued behind other requests)", start)
		qh := &heldUnit{u: &unit{steps: []step{{queueFile, true}}, weight: 1}, files: []*os.File{q}}
		if _, err := l.block(ctx, []*heldUnit{qh}, 1); err != nil {
			prog.stop(false)
			return nil, l.waitErr(ctx, err, want, start, nil)
		}
	} else if err != nil {
		return nil, lockErr("flock %s: %w", q.Name(), err)
	}
	got, busy, err := l.tryPass(cands, need, r.Kind)
	if err != nil {
		prog.stop(false)
		return nil, err
	}
	if weightOf(got) < need {
		onWait()
		if prog == nil {
			prog = startProgress(r.Progress, want, start)
		}
		pending := make([]*heldUnit, 0, len(busy))
		for _, u := range busy {
			h := &heldUnit{u: u}
			for _, s := range u.steps {
				f, err := openLockFile(l.Dir, s.name)
				if err != nil {
					releaseAll(got)
					releaseAll(pending)
					h.close()
					prog.stop(false)
					return nil, err
				}
				h.files = append(h.files, f)
			}
			pending = append(pending, h)
		}
		more, err := l.block(ctx, pending, need-weightOf(got))
		if err != nil {
			releaseAll(got)
			prog.stop(false)
			return nil, l.waitErr(ctx, err, want, start, busy)
		}
		got = append(got, more...)
	}
	prog.stop(true)
	sel, rest := pick(got, need, r.Kind)
	releaseAll(rest)
	if sel == nil { // cannot happen: block returned enough
		return nil, fmt.Errorf("internal error: %s: held %d", want, weightOf(got))
	}
	return l.finish(sel, r)
}

func (l *Locker) waitErr(ctx context.Context, err error, want string, start time.Time, busy []*unit) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return &TimeoutError{Want: want, Waited: time.Since(start), Holders: l.holdersOf(busy)}
	}
	return err
}

// block waits, without polling, until units of pending worth need have
// been acquired, or ctx is done. Each pending unit gets a goroutine doing
// blocking flocks, step by step, on its own duplicates of the unit's file
// descriptors (so it never touches a descriptor number this goroutine may
// close). When enough have completed, the rest are abandoned: their
// files are closed here, and each abandoned goroutine closes its
// duplicates when its flock returns, which drops the last reference to
// the open file description and with it any lock it got. Acquired units
// are returned; everything else is closed.
func (l *Locker) block(ctx context.Context, pending []*heldUnit, need int) ([]*heldUnit, error) {
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(pending))
	abandoned := make([]atomic.Bool, len(pending))
	for i, h := range pending {
		dups := make([]int, len(h.files))
		for k, f := range h.files {
			d, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				for _, d := range dups[:k] {
					unix.Close(d)
				}
				for j := range pending[:i] {
					abandoned[j].Store(true)
				}
				releaseAll(pending)
				return nil, lockErr("dup %s: %w", f.Name(), err)
			}
			dups[k] = d
		}
		go func(i int, steps []step, dups []int) {
			var err error
			for k, s := range steps {
				if abandoned[i].Load() {
					err = context.Canceled
					break
				}
				if err = flockRetry(dups[k], lockHow(s.excl, false)); err != nil {
					err = lockErr("flock %s: %w", s.name, err)
					break
				}
			}
			results <- result{i, err}
			for _, d := range dups {
				unix.Close(d)
			}
		}(i, h.u.steps, dups)
	}
	var got []*heldUnit
	done := make([]bool, len(pending))
	abandonRest := func() {
		for i, h := range pending {
			if !done[i] {
				abandoned[i].Store(true)
				h.close()
			}
		}
	}
	w := 0
	for w < need {
		select {
		case res := <-results:
			done[res.i] = true
			if res.err != nil {
				abandonRest()
				pending[res.i].close()
				releaseAll(got)
				return nil, res.err
			}
			got = append(got, pending[res.i])
			w += pending[res.i].u.weight
		case <-ctx.Done():
			abandonRest()
			releaseAll(got)
			return nil, ctx.Err()
		}
	}
	abandonRest()
	return got, nil
}

// finish writes the holder records and builds the reservation.
func (l *Locker) finish(sel []*heldUnit, r Request) (*Reservation, error) {
	res := &Reservation{Request: r.String(), dir: l.Dir}
	var cpus, llcs, nodes []int
	for _, h := range sel {
		cpus = append(cpus, h.u.cpus...)
		llcs = append(llcs, h.u.llc)
		nodes = append(nodes, h.u.node)
	}
	cpus = cpulist.Normalize(cpus)
	if r.Kind == CPUCap {
		need := r.Count
		if need < 1 {
			need = (r.Percent*len(l.Topo.Allowed) + 99) / 100
		}
		cpus = cpus[:min(need, len(cpus))]
	}
	res.CPUs, res.LLCs, res.Nodes = cpus, cpulist.Normalize(llcs), cpulist.Normalize(nodes)
	rec := Record{PID: os.Getpid(), Request: res.Request, CPUs: cpulist.Format(cpus),
		Since: time.Now().UTC().Truncate(time.Millisecond), Command: r.Command}
	for _, h := range sel {
		for k, s := range h.u.steps {
			rec.Mode = "shared"
			if s.excl {
				rec.Mode = "exclusive"
			}
			if err := writeRecord(h.files[k], rec, s.excl); err != nil {
				releaseAll(sel)
				return nil, lockErr("record holder: %w", err)
			}
			res.files = append(res.files, h.files[k])
			if !s.excl {
				res.shared = append(res.shared, s.name)
			}
		}
	}
	return res, nil
}

// Reservation is a set of held flocks: released by Release, by this
// process exiting, or, once Files were passed to children, when the last
// process holding them closes them.
type Reservation struct {
	CPUs    []int  // reserved CPUs, ascending
	LLCs    []int  // LLC indices touched, ascending
	Nodes   []int  // their NUMA nodes, ascending
	Request string // the request as flags

	dir    string
	files  []*os.File
	shared []string
}

// Files returns the open lock files (to pass as exec.Cmd.ExtraFiles).
func (r *Reservation) Files() []*os.File { return r.files }

// Env returns the KTSTR_CPUS, KTSTR_LLCS and KTSTR_NUMA_NODES assignments.
func (r *Reservation) Env() []string {
	return []string{EnvCPUs + "=" + cpulist.Format(r.CPUs), EnvLLCs + "=" + cpulist.Format(r.LLCs),
		EnvNodes + "=" + cpulist.Format(r.Nodes)}
}

// Release closes the lock files. A lock stays held while a child that
// inherited it keeps it open. Shared lock files nobody holds any more are
// emptied of stale holder records.
func (r *Reservation) Release() {
	for _, f := range r.files {
		f.Close()
	}
	r.files = nil
	for _, name := range r.shared {
		f, err := openLockFile(r.dir, name)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			unix.Ftruncate(int(f.Fd()), 0)
		}
		f.Close()
	}
	r.shared = nil
}
