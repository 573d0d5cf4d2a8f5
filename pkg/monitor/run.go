package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kernelsym"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Options configure Run.
type Options struct {
	In     io.Reader // the framed stream
	Out    io.Writer // frames: the tee'd stream and/or the monitor's own
	Report io.Writer // violations and the summary (text or JSON lines)
	Status io.Writer // live one-line status (a terminal); nil for none
	Logf   func(format string, a ...any)

	Tee  bool // copy In to Out unchanged
	Emit bool // write sample and violation frames to Out
	JSON bool // Report as JSON lines

	GuestMem string            // guest RAM file; "" waits for VMStart's
	Regions  []guestmem.Region // its layout; nil: QEMU's split at 3 GiB
	Kernel   *kernelsym.Kernel // nil: FindKernel's, else no sampling, frames only
	// FindKernel, when Kernel is nil, loads the kernel's symbols and BTF
	// for the bzImage VMStart names (its vmlinux found beside it or in
	// its cache entry); nil: never.
	FindKernel func(bzImage string) (*kernelsym.Kernel, error)
	Interval   time.Duration
	VCPUs      int // CPUs to sample; 0: VMStart's, else the guest's nr_cpu_ids
	VMMPID     int // for vCPU thread times; 0: VMStart's

	// WatchdogTimeout, when above 0, overrides the sched_ext watchdog
	// timeout in guest memory (Sampler.WatchdogOverride); guest memory is
	// then mapped writable.
	WatchdogTimeout time.Duration

	ControlFIFO string   // "" : VMStart's
	DumpKeys    []string // nil or empty: never ask for a dump
	Thresholds  Thresholds
}

// Result is what a run found.
type Result struct {
	Summary      Summary          `json:"summary"`
	Violations   []wire.Violation `json:"violations"`
	StreamErrors int              `json:"stream_errors"` // corrupt or truncated regions
	Frames       int              `json:"frames"`
	GuestFrames  int              `json:"guest_frames"` // frames without the host flag
	Sampling     bool             `json:"sampling"`     // the monitor read guest memory
	KernelFound  bool             `json:"kernel_found"`
	SampleErrors int              `json:"sample_errors"`
	Dumps        int              `json:"dumps"` // dump requests delivered
}

type runner struct {
	o          Options
	start      time.Time
	mu         sync.Mutex
	ev         *Evaluator
	enc        *wire.Encoder
	res        Result
	raw        recorder
	wg         sync.WaitGroup
	ctx        context.Context
	vm         *wire.VMStart
	dumpd      bool
	lastStatus time.Time
}

// recorder keeps the raw bytes the decoder has read and not yet passed on,
// so that the tee copies the input exactly (corrupt bytes included) and
// the monitor's own frames go in only at frame boundaries.
type recorder struct {
	r    io.Reader
	mu   sync.Mutex
	buf  []byte
	base int64 // stream offset of buf[0]
}

func (c *recorder) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.buf = append(c.buf, p[:n]...)
	c.mu.Unlock()
	return n, err
}

// take returns the bytes up to stream offset off and forgets them.
func (c *recorder) take(off int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(max(off-c.base, 0), int64(len(c.buf)))
	out := append([]byte(nil), c.buf[:n]...)
	c.buf = append(c.buf[:0], c.buf[n:]...)
	c.base += n
	return out
}

// Run processes the stream until it ends or ctx is done.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Interval <= 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	r := &runner{o: o, start: time.Now(), ev: NewEvaluator(o.Thresholds), ctx: ctx}
	r.raw.r = o.In
	if o.Emit {
		r.enc = wire.NewEncoder(o.Out, wire.WithFlags(wire.FlagHost))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); r.wg.Wait() }()
	r.ctx = ctx
	if o.GuestMem != "" {
		if err := r.startSampling(o.GuestMem, o.Regions); err != nil {
			return nil, err
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.readStream() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Summary = r.ev.Summary()
	r.clearStatus()
	r.printSummary()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	res := r.res
	return &res, err
}

func (r *runner) elapsed() uint64 { return uint64(time.Since(r.start)) }

func (r *runner) readStream() error {
	dec := wire.NewDecoder(&r.raw)
	for {
		f, err := dec.Next()
		r.mu.Lock()
		if r.o.Tee {
			if b := r.raw.take(dec.Offset()); len(b) > 0 {
				if _, werr := r.o.Out.Write(b); werr != nil {
					r.mu.Unlock()
					return fmt.Errorf("write stream: %w", werr)
				}
			}
		} else {
			r.raw.take(dec.Offset())
		}
		switch {
		case err == nil:
			r.res.Frames++
			if f.Flags&wire.FlagHost == 0 {
				r.res.GuestFrames++
			}
			r.frame(f)
		case wire.IsCorruption(err):
			r.res.StreamErrors++
			r.o.Logf("%v", err)
		case errors.Is(err, io.EOF):
			r.mu.Unlock()
			return nil
		default:
			r.mu.Unlock()
			return fmt.Errorf("read stream: %w", err)
		}
		r.mu.Unlock()
	}
}

// frame handles one input frame; r.mu is held.
func (r *runner) frame(f *wire.Frame) {
	if !f.Type.Known() {
		return
	}
	m, err := wire.Unmarshal(f.Type, f.Payload)
	if err != nil {
		r.res.StreamErrors++
		r.o.Logf("frame at byte %d: %v", f.Offset, err)
		return
	}
	switch v := m.(type) {
	case wire.VMStart:
		r.vm = &v
		if !r.res.Sampling && r.o.GuestMem == "" && v.MemoryPath != "" {
			regs := make([]guestmem.Region, len(v.Regions))
			for i, x := range v.Regions {
				regs[i] = guestmem.Region{GPA: x.GPA, Size: x.Size, Offset: x.Offset}
			}
			if r.o.Kernel == nil && r.o.FindKernel != nil && v.Kernel != "" {
				k, err := r.o.FindKernel(v.Kernel)
				if err != nil {
					r.o.Logf("no vmlinux for the guest kernel: %v", err)
				} else {
					r.o.Kernel = k
				}
			}
			if err := r.startSampling(v.MemoryPath, regs); err != nil {
				r.o.Logf("not sampling guest memory: %v", err)
			}
		}
	case wire.MonitorSample:
		// Samples already in the stream (a recording, or a VMM that samples
		// itself) are evaluated unless this monitor samples on its own.
		if !r.res.Sampling {
			r.evalSample(&v)
		}
	default:
		for _, viol := range r.ev.Frame(m, r.elapsed()) {
			r.violation(viol)
		}
	}
}

// startSampling opens guest memory and starts the sampler; r.mu may be held.
func (r *runner) startSampling(path string, regs []guestmem.Region) error {
	if r.o.Kernel == nil {
		return errors.New("no vmlinux given (--vmlinux or KTSTR_VMLINUX): guest memory cannot be read without the kernel's symbols and BTF")
	}
	if len(regs) == 0 {
		mem, err := guestmem.Open(path, nil)
		if err != nil {
			return err
		}
		size := mem.Size()
		mem.Close()
		regs = guestmem.SplitLayout(size, guestmem.MicrovmLowMemMax)
	}
	open := guestmem.Open
	if r.o.WatchdogTimeout > 0 {
		open = guestmem.OpenWritable
	}
	mem, err := open(path, regs)
	if err != nil {
		return err
	}
	r.res.Sampling = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer mem.Close()
		r.sampleLoop(mem)
	}()
	return nil
}

// fullScanAfter: while the kernel is not found at any aligned place, all
// of guest RAM is scanned once this long after the first attempt and then
// at this interval. A full scan reads (and page-faults in) every byte of
// RAM, tens of milliseconds for 512 MiB, and is only needed for a kernel
// placed without regard to its physical alignment, which no Linux boot
// path does; a kernel still booting is found by the aligned search.
const fullScanAfter = 30 * time.Second

// relocateAfter is how many failed samples in a row send the sampler back
// to finding the kernel.
const relocateAfter = 3

// watchInterval is how often the sched_ext state alone is read between
// samples (see Sampler.Watch).
const watchInterval = 10 * time.Millisecond

func (r *runner) sampleLoop(mem *guestmem.Memory) {
	tick := r.o.Interval
	t := time.NewTicker(tick)
	defer t.Stop()
	next := time.Now().Add(r.o.Interval)
	var sm *Sampler
	warned, errRun := false, 0
	var firstTry, lastFull time.Time
	lastDelta := ^uint64(0)
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		// The ticker runs at the sample interval, and faster (watchInterval)
		// only while a sched_ext scheduler is enabled, so that its exit is
		// seen; a tick within half a watch interval of the next sample
		// takes the sample.
		want := r.o.Interval
		if sm != nil && sm.Watching() {
			want = min(watchInterval, r.o.Interval)
		}
		if want != tick {
			tick = want
			t.Reset(tick)
		}
		if now := time.Now(); now.Add(watchInterval / 2).Before(next) {
			if sm != nil && sm.Watching() {
				sm.Watch()
			}
			continue
		} else {
			next = next.Add(r.o.Interval)
			if next.Before(now) { // fell behind (host overload): do not burst
				next = now.Add(r.o.Interval)
			}
		}
		if sm == nil {
			locate := Locate
			if firstTry.IsZero() {
				firstTry, lastFull = time.Now(), time.Now()
			}
			if time.Since(lastFull) >= fullScanAfter {
				lastFull = time.Now()
				locate = LocateAnywhere
			}
			g, err := locate(mem, r.o.Kernel)
			if err != nil {
				if !warned && time.Since(r.start) > 60*time.Second {
					warned = true
					r.o.Logf("%v after 60 s: is %s the guest's kernel? (still looking)", err, r.o.Kernel.Path)
				}
				continue
			}
			r.mu.Lock()
			vcpus, pid := r.o.VCPUs, r.o.VMMPID
			if r.vm != nil {
				if vcpus == 0 {
					vcpus = r.vm.VCPUs
				}
				if pid == 0 {
					pid = r.vm.PID
				}
			}
			r.res.KernelFound = true
			r.mu.Unlock()
			if pid == 0 && r.o.GuestMem != "" {
				// QEMU and other VMMs given a RAM file: the process that
				// maps it is the VMM (it has started by now).
				if pid = FindMapper(r.o.GuestMem); pid > 0 && sm == nil && lastDelta == ^uint64(0) {
					r.o.Logf("vCPU thread times from pid %d (it maps %s)", pid, r.o.GuestMem)
				}
			}
			if g.PhysDelta() != lastDelta {
				lastDelta = g.PhysDelta()
				r.o.Logf("kernel found in guest memory: physical offset %#x, virtual offset %#x, %d-level paging", g.PhysDelta(), g.VirtDelta(), g.Levels())
			}
			sm = NewSampler(g, vcpus)
			sm.WatchdogOverride, sm.Logf = r.o.WatchdogTimeout, r.o.Logf
			if pid > 0 {
				sm.VCPUTime = NewVCPUThreads(pid).Times
			}
		}
		ms, err := sm.Sample(r.elapsed())
		if err != nil {
			r.mu.Lock()
			r.res.SampleErrors++
			r.mu.Unlock()
			errRun++
			if errRun%relocateAfter == 0 {
				// What looked like the kernel may have been a transient
				// copy (the decompressor's, before it moved the image
				// into place), or the guest rebooted: look again.
				sm = nil
			}
			if errRun == 50 {
				r.o.Logf("sampling keeps failing: %v", err)
			}
			continue
		}
		errRun = 0
		r.mu.Lock()
		if r.enc != nil {
			if err := r.enc.Encode(ms); err != nil {
				r.o.Logf("%v", err)
			}
		}
		r.evalSample(ms)
		r.mu.Unlock()
	}
}

// evalSample evaluates a sample; r.mu is held.
func (r *runner) evalSample(ms *wire.MonitorSample) {
	vs := r.ev.Sample(ms)
	for _, v := range vs {
		r.violation(v)
		if v.Kind == KindStall || v.Kind == KindImbalance || v.Kind == KindDSQDepth {
			r.requestDump(v)
		}
	}
	r.status()
}

func (r *runner) violation(v wire.Violation) {
	r.res.Violations = append(r.res.Violations, v)
	if r.enc != nil {
		if err := r.enc.Encode(v); err != nil {
			r.o.Logf("%v", err)
		}
	}
	r.clearStatus()
	if r.o.JSON {
		b, _ := json.Marshal(struct {
			Event string `json:"event"`
			wire.Violation
		}{"violation", v})
		fmt.Fprintf(r.o.Report, "%s\n", b)
		return
	}
	cpu := "global"
	if v.CPU >= 0 {
		cpu = fmt.Sprintf("cpu%d", v.CPU)
	}
	fmt.Fprintf(r.o.Report, "violation %s %s at %s: %s\n", v.Kind, cpu, secs(v.ElapsedNS), v.Message)
}

// requestDump asks the VMM for a kernel dump once per run.
func (r *runner) requestDump(v wire.Violation) {
	if r.dumpd || len(r.o.DumpKeys) == 0 {
		return
	}
	fifo := r.o.ControlFIFO
	if fifo == "" && r.vm != nil {
		fifo = r.vm.ControlFIFO
	}
	if fifo == "" {
		return
	}
	r.dumpd = true
	if err := SendDump(fifo, r.o.DumpKeys); err != nil {
		r.o.Logf("dump request after %s: %v", v.Kind, err)
		return
	}
	r.res.Dumps++
	r.o.Logf("asked the VMM for SysRq %v after %s (see the guest console)", r.o.DumpKeys, v.Kind)
}

func (r *runner) status() {
	if r.o.Status == nil || time.Since(r.lastStatus) < 200*time.Millisecond {
		return
	}
	r.lastStatus = time.Now()
	s := r.ev.Summary()
	fmt.Fprintf(r.o.Status, "\r\x1b[Kktstr-monitor %.1fs  samples %d  max nr_running %d  violations %d",
		time.Since(r.start).Seconds(), s.Samples, s.MaxNrRunning, s.Violations)
}

func (r *runner) clearStatus() {
	if r.o.Status != nil && !r.lastStatus.IsZero() {
		fmt.Fprint(r.o.Status, "\r\x1b[K")
		r.lastStatus = time.Time{}
	}
}

// NoVerdict says why the run gave the monitor nothing to judge, or ""
// when it did: an empty stream, no frame from the guest, guest memory
// that never showed the kernel, or runqueue clocks that never moved (a
// guest that hung from the start, or memory that is not this kernel's).
// None of these may read as "monitor OK".
func (res *Result) NoVerdict() string {
	s := res.Summary
	switch {
	case res.Frames == 0:
		return "empty stream: no frame arrived"
	case res.GuestFrames == 0:
		return fmt.Sprintf("no frame from the guest in %d frames: the guest never reported", res.Frames)
	case res.Sampling && !res.KernelFound:
		return "the kernel was never found in guest memory: nothing was watched"
	case s.Samples > 1 && !s.ClocksAdvanced:
		return fmt.Sprintf("no runqueue clock advanced in %d samples: the guest hung from the start, or the samples are not this kernel's", s.Samples)
	}
	return ""
}

func (r *runner) printSummary() {
	s := r.res.Summary
	if r.o.JSON {
		b, _ := json.Marshal(struct {
			Event string `json:"event"`
			Summary
			StreamErrors int    `json:"stream_errors"`
			Frames       int    `json:"frames"`
			Sampling     bool   `json:"sampling"`
			KernelFound  bool   `json:"kernel_found"`
			Dumps        int    `json:"dumps"`
			GuestFrames  int    `json:"guest_frames"`
			NoVerdict    string `json:"no_verdict,omitempty"`
		}{"summary", s, r.res.StreamErrors, r.res.Frames, r.res.Sampling, r.res.KernelFound, r.res.Dumps, r.res.GuestFrames, r.res.NoVerdict()})
		fmt.Fprintf(r.o.Report, "%s\n", b)
		return
	}
	verdict := "monitor OK"
	nv := r.res.NoVerdict()
	switch {
	case s.Violations > 0:
		verdict = fmt.Sprintf("monitor FAILED: %d violation(s)", s.Violations)
	case nv != "":
		verdict = "monitor NO VERDICT (" + nv + ")"
	}
	fmt.Fprintf(r.o.Report, "%s: %d frames, %d samples (%d evaluated after warm-up), max nr_running %d, max imbalance %.1f, max local DSQ %d",
		verdict, r.res.Frames, s.Samples, s.Evaluated, s.MaxNrRunning, s.MaxImbalance, s.MaxLocalDSQ)
	if r.res.StreamErrors > 0 {
		fmt.Fprintf(r.o.Report, ", %d corrupt stream region(s)", r.res.StreamErrors)
	}
	fmt.Fprintln(r.o.Report)
}
