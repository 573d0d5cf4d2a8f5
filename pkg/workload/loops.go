package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"github.com/ktstr-go/ktstr/pkg/scenario"
	"golang.org/x/sys/unix"
)

// Env is what a work loop gets from the worker process around it.
type Env struct {
	Rec *Recorder
	// Serve answers report requests that arrived since the last call; a
	// loop calls it after every unit of progress, and while it waits.
	Serve func()
	// Pairs over pipes: PeerRd reads from the partner, PeerWr writes to
	// it. Work sharing a page (futex pairs, fan-out and mutex groups):
	// PeerRd is the page's file descriptor.
	PeerRd, PeerWr int
	// Index is the worker's place in its pair or group: 0 sends first
	// (pairs) or is the messenger (fan-out groups).
	Index int
}

// Exit codes of a work loop (the worker process's status).
const (
	ExitPeerGone = 4 // the partner's pipe closed, or the shared page could not be mapped
	ExitSetup    = 5 // the work could not start or its program failed
)

// waitSlice bounds every blocking wait of a loop that may wait on another
// worker, so that report requests are answered meanwhile.
const waitSlice = 100_000_000 // 100 ms

// spinSink keeps the spin loop's result alive.
var spinSink atomic.Uint64

// Spin runs n rounds of xorshift: pure CPU work.
func Spin(n int) {
	x := uint64(n) | 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	spinSink.Store(x)
}

// spinUnit is the spin work per progress mark of spin work.
const spinUnit = 1 << 14

type loop struct {
	w   scenario.Work
	env *Env
	rec *Recorder
	rng uint64
}

func (l *loop) mark(n uint64) {
	l.rec.MarkN(nanotime(), getcpu(), n)
	l.env.Serve()
}

// timedYield yields the CPU and records how long it took to get it back.
func (l *loop) timedYield() {
	t0 := nanotime()
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	l.rec.Wake(nanotime() - t0)
}

// sleepFor sleeps ns, records the oversleep as a wake latency and does not
// count the intended sleep as a gap.
func (l *loop) sleepFor(ns int64) {
	due := nanotime() + ns
	ts := unix.NsecToTimespec(ns)
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
	l.rec.Wake(nanotime() - due)
	l.rec.Skip(due)
}

func (l *loop) rand() uint64 {
	l.rng ^= l.rng << 13
	l.rng ^= l.rng >> 7
	l.rng ^= l.rng << 17
	return l.rng
}

func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "ktstr worker: "+format+"\n", a...)
	return ExitSetup
}

// Run runs the work until the process is told to stop (the caller exits
// the process); it returns only when the work cannot go on, with the exit
// status to use.
func Run(w scenario.Work, env *Env) int {
	l := &loop{w: w.WithDefaults(), env: env, rec: env.Rec, rng: uint64(os.Getpid())*0x9E3779B97F4A7C15 | 1}
	if u := w.Unit(); u != "" {
		l.rec.SetUnit(u)
	}
	d := l.w
	switch w.Type {
	case scenario.WorkPingPong:
		if w.Mode == "futex" {
			return l.futexPingPong(256)
		}
		return l.pipePingPong(func() { Spin(256) })
	case scenario.WorkPipeIO:
		return l.pipePingPong(func() { Spin(d.BurstIters) })
	case scenario.WorkFutexPingPong:
		return l.futexPingPong(d.SpinIters)
	case scenario.WorkCachePipe:
		buf := make([]byte, d.SizeKB*1024)
		off := 0
		return l.pipePingPong(func() { off = touchRun(buf, off, 64, d.BurstIters) })
	case scenario.WorkBursty:
		return l.bursty()
	case scenario.WorkYield, scenario.WorkYieldHeavy:
		for {
			for i := 0; i < 16; i++ {
				Spin(128)
				unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			l.mark(1)
		}
	case scenario.WorkMixed:
		for {
			Spin(1024)
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			l.mark(1)
		}
	case scenario.WorkIOSync:
		return l.ioSync(-1)
	case scenario.WorkCachePressure, scenario.WorkCacheYield:
		return l.cache(w.Type == scenario.WorkCacheYield)
	case scenario.WorkSequence:
		return l.sequence()
	case scenario.WorkForkExit:
		for {
			pid, e := forkExit()
			if e != 0 {
				if e == unix.EAGAIN || e == unix.ENOMEM {
					l.sleepFor(1_000_000)
					continue
				}
				return fail("fork_exit: fork: %v", e)
			}
			var ws unix.WaitStatus
			for {
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
					break
				}
			}
			l.mark(1)
		}
	case scenario.WorkNiceSweep:
		return l.niceSweep()
	case scenario.WorkAffinityChurn:
		return l.affinityChurn()
	case scenario.WorkPolicyChurn:
		return l.policyChurn()
	case scenario.WorkPageFaultChurn:
		return l.pageFaultChurn()
	case scenario.WorkFutexFanOut, scenario.WorkFanOutCompute:
		return l.fanOut()
	case scenario.WorkMutexContention:
		return l.mutex()
	case scenario.WorkCustom:
		return l.custom()
	case scenario.WorkSpin, scenario.WorkCPUSpin:
		for {
			Spin(spinUnit)
			l.mark(1)
		}
	}
	return fail("work type %q has no loop", w.Type)
}

func (l *loop) bursty() int {
	run := int64(l.w.RunMS) * 1e6
	for {
		for t0 := nanotime(); nanotime()-t0 < run; {
			Spin(1 << 12)
			l.mark(1)
		}
		l.sleepFor(int64(l.w.SleepMS) * 1e6)
	}
}

// pipePingPong alternates with the partner over two pipes: each message is
// the sender's CLOCK_MONOTONIC timestamp, so the receiver measures how long
// the wake-up took.
func (l *loop) pipePingPong(work func()) int {
	rd, wr := l.env.PeerRd, l.env.PeerWr
	_ = unix.SetNonblock(rd, false)
	_ = unix.SetNonblock(wr, false)
	var buf [8]byte
	send := func() bool {
		binary.LittleEndian.PutUint64(buf[:], uint64(nanotime()))
		_, err := unix.Write(wr, buf[:])
		return err == nil
	}
	if l.env.Index == 0 && !send() {
		return ExitPeerGone
	}
	for {
		for got := 0; got < 8; {
			n, err := unix.Read(rd, buf[got:])
			if err == unix.EINTR {
				continue
			}
			if n <= 0 {
				return ExitPeerGone
			}
			got += n
		}
		l.rec.Wake(nanotime() - int64(binary.LittleEndian.Uint64(buf[:])))
		work()
		l.mark(1)
		if !send() {
			return ExitPeerGone
		}
	}
}

// sharedPage maps the page that a futex pair or group shares (fd PeerRd):
// a 32-bit futex word at offset 0 and a 64-bit timestamp at offset 8.
func (l *loop) sharedPage() (*atomic.Uint32, *atomic.Int64, error) {
	mem, err := unix.Mmap(l.env.PeerRd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("map the shared page: %w", err)
	}
	return (*atomic.Uint32)(unsafe.Pointer(&mem[0])), (*atomic.Int64)(unsafe.Pointer(&mem[8])), nil
}

// futexPingPong alternates with the partner through the futex word: 0
// means the first worker's turn, 1 the other's.
func (l *loop) futexPingPong(spin int) int {
	word, stamp, err := l.sharedPage()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ktstr worker: %v\n", err)
		return ExitPeerGone
	}
	me, other := uint32(1), uint32(0)
	if l.env.Index == 0 {
		me, other = 0, 1
	}
	for {
		for word.Load() != me {
			// Sleeps only while the word still says it is the other's turn.
			futexWait((*uint32)(unsafe.Pointer(word)), other, waitSlice)
			if word.Load() != me {
				l.env.Serve()
			}
		}
		if ts := stamp.Load(); ts != 0 {
			l.rec.Wake(nanotime() - ts)
		}
		Spin(spin)
		l.mark(1)
		stamp.Store(nanotime())
		word.Store(other)
		futexWake((*uint32)(unsafe.Pointer(word)), 1)
	}
}

// fanOut: the messenger (index 0) spins, stamps the time, advances the
// generation word and wakes every receiver; a receiver waits for the
// generation to move, records the wake latency, and (fan_out_compute)
// sleeps sleep_us and multiplies matrices.
func (l *loop) fanOut() int {
	gen, stamp, err := l.sharedPage()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ktstr worker: %v\n", err)
		return ExitPeerGone
	}
	addr := (*uint32)(unsafe.Pointer(gen))
	compute := l.w.Type == scenario.WorkFanOutCompute
	if l.env.Index == 0 {
		l.rec.SetUnit("wakes sent")
		for {
			if !compute {
				Spin(l.w.SpinIters)
			}
			stamp.Store(nanotime())
			gen.Add(1)
			futexWake(addr, l.w.FanOut)
			Spin(256) // let the receivers run before the next round
			l.mark(1)
		}
	}
	var m *matrices
	if compute {
		l.rec.SetUnit("compute rounds")
		m = newMatrices(l.w.FootprintKB)
	} else {
		l.rec.SetUnit("wakes received")
	}
	seen := gen.Load()
	for {
		cur := gen.Load()
		if cur == seen {
			futexWait(addr, seen, waitSlice)
			if gen.Load() == seen {
				l.env.Serve()
			}
			continue
		}
		seen = cur
		l.rec.Wake(nanotime() - stamp.Load())
		if compute {
			// Think time: a plain sleep (its oversleep is not a wake
			// latency of this work, which measures the messenger's wakes).
			ts := unix.NsecToTimespec(int64(l.w.SleepUS) * 1000)
			for unix.Nanosleep(&ts, &ts) == unix.EINTR {
			}
			for i := 0; i < l.w.Operations; i++ {
				m.multiply()
			}
			seen = gen.Load() // rounds sent while computing are not waited for
		}
		l.mark(1)
	}
}

// mutex: contenders share a futex lock word (0 free, 1 held, 2 held with
// waiters) and the time of the last release; a worker that had to sleep
// for the lock records the time from that release to running again.
func (l *loop) mutex() int {
	lock, stamp, err := l.sharedPage()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ktstr worker: %v\n", err)
		return ExitPeerGone
	}
	addr := (*uint32)(unsafe.Pointer(lock))
	for {
		Spin(l.w.WorkIters)
		if !lock.CompareAndSwap(0, 1) {
			waited := false
			for lock.Swap(2) != 0 {
				futexWait(addr, 2, waitSlice)
				waited = true
				l.env.Serve()
			}
			if waited {
				l.rec.Wake(nanotime() - stamp.Load())
			}
		}
		Spin(l.w.HoldIters)
		stamp.Store(nanotime())
		if lock.Swap(0) == 2 {
			futexWake(addr, 1)
		}
		l.mark(1)
	}
}

// touchRun does n strided read-modify-writes over buf from offset off and
// returns the next offset.
func touchRun(buf []byte, off, stride, n int) int {
	for i := 0; i < n; i++ {
		buf[off]++
		off += stride
		if off >= len(buf) {
			off -= len(buf)
		}
	}
	return off
}

// cache runs strided passes over a private buffer; cache_yield yields
// after every pass, cache_pressure marks progress every ~16 K accesses.
func (l *loop) cache(yield bool) int {
	buf := make([]byte, l.w.SizeKB*1024)
	per := (len(buf) + l.w.Stride - 1) / l.w.Stride
	batch := max(1, spinUnit/per)
	if yield {
		batch = 1
	}
	for {
		for p := 0; p < batch; p++ {
			touchRun(buf, 0, l.w.Stride, per)
		}
		if yield {
			l.timedYield()
		}
		l.mark(uint64(batch))
	}
}

// ioFile opens an unlinked scratch file for io work.
func ioFile() (*os.File, error) {
	f, err := os.CreateTemp("", "ktstr-io-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

var ioBuf = make([]byte, 64<<10)

// ioOnce writes 64 KiB at offset 0, syncs and sleeps 100 µs.
func (l *loop) ioOnce(f *os.File) error {
	if _, err := f.WriteAt(ioBuf, 0); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	l.mark(1)
	l.sleepFor(100_000)
	return nil
}

// ioSync writes and sleeps for ever (untilNS < 0) or until untilNS.
func (l *loop) ioSync(untilNS int64) int {
	f, err := ioFile()
	if err != nil {
		return fail("io work: scratch file: %v", err)
	}
	defer f.Close()
	for untilNS < 0 || nanotime() < untilNS {
		if err := l.ioOnce(f); err != nil {
			return fail("io work: %v", err)
		}
	}
	return 0
}

func (l *loop) sequence() int {
	for {
		for _, p := range l.w.Phases {
			end := nanotime() + int64(p.MS)*1e6
			switch p.Phase {
			case "spin":
				for nanotime() < end {
					Spin(1 << 12)
					l.mark(1)
				}
			case "sleep":
				l.sleepFor(int64(p.MS) * 1e6)
				l.mark(1)
			case "yield":
				for nanotime() < end {
					l.timedYield()
					l.mark(1)
				}
			case "io":
				if rc := l.ioSync(end); rc != 0 {
					return rc
				}
			}
		}
	}
}

func (l *loop) niceSweep() int {
	nice := -20
	for {
		Spin(512)
		for {
			// PRIO_PROCESS with who 0 is the calling thread on Linux.
			err := unix.Setpriority(unix.PRIO_PROCESS, 0, nice)
			if err == nil || nice >= 0 {
				break
			}
			nice = 0 // no CAP_SYS_NICE: skip the negative levels
		}
		if nice++; nice > 19 {
			nice = -20
		}
		l.timedYield()
		l.mark(1)
	}
}

// allowedCPUs is the CPUs the worker may run on: its cgroup's effective
// cpuset when it can be read, else its current affinity.
func allowedCPUs() []int {
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		// cgroup v2: "0::/path"
		if _, path, ok := strings.Cut(strings.TrimSpace(string(b)), "::"); ok {
			if c, err := os.ReadFile("/sys/fs/cgroup" + path + "/cpuset.cpus.effective"); err == nil {
				if cpus, err := cpulist.Parse(strings.TrimSpace(string(c))); err == nil && len(cpus) > 0 {
					return cpus
				}
			}
		}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

func (l *loop) affinityChurn() int {
	allowed := allowedCPUs()
	if len(allowed) == 0 {
		return fail("affinity_churn: no allowed CPU")
	}
	for {
		Spin(l.w.SpinIters)
		var set unix.CPUSet
		set.Set(allowed[l.rand()%uint64(len(allowed))])
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			// The cpuset changed under us: start from the new one.
			if allowed = allowedCPUs(); len(allowed) == 0 {
				return fail("affinity_churn: no allowed CPU")
			}
		}
		l.timedYield()
		l.mark(1)
	}
}

// Scheduling policies (sched_setscheduler(2)).
const (
	schedOther = 0
	schedFIFO  = 1
	schedRR    = 2
	schedBatch = 3
	schedIdle  = 5
)

func setPolicy(policy, prio int) error {
	p := int32(prio)
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, uintptr(policy), uintptr(unsafe.Pointer(&p)))
	if e != 0 {
		return e
	}
	return nil
}

func (l *loop) policyChurn() int {
	type pol struct{ policy, prio int }
	seq := []pol{{schedOther, 0}, {schedBatch, 0}, {schedIdle, 0}, {schedFIFO, 1}, {schedRR, 1}}
	for i := 0; ; i++ {
		Spin(l.w.SpinIters)
		p := seq[i%len(seq)]
		// Without CAP_SYS_NICE, FIFO and RR are refused, and so is leaving
		// SCHED_IDLE (RLIMIT_NICE): those steps are skipped.
		if err := setPolicy(p.policy, p.prio); err != nil && err != unix.EPERM {
			return fail("policy_churn: sched_setscheduler(%d): %v", p.policy, err)
		}
		l.timedYield()
		l.mark(1)
	}
}

func (l *loop) pageFaultChurn() int {
	size := l.w.RegionKB * 1024
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fail("page_fault_churn: mmap %d KiB: %v", l.w.RegionKB, err)
	}
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	pages := uint64(size / 4096)
	for {
		for t := 0; t < l.w.Touches; t++ {
			mem[(l.rand()%pages)*4096]++
		}
		if err := unix.Madvise(mem, unix.MADV_DONTNEED); err != nil {
			return fail("page_fault_churn: madvise: %v", err)
		}
		Spin(l.w.SpinIters)
		l.mark(1)
	}
}

func (l *loop) custom() int {
	for {
		cmd := exec.Command(l.w.Argv[0], l.w.Argv[1:]...)
		cmd.Dir = os.TempDir()
		err := cmd.Run()
		if cmd.ProcessState != nil {
			l.rec.AddCPU(int64(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()))
		}
		if err != nil {
			return fail("custom work %s: %v", l.w.Argv[0], err)
		}
		l.mark(1)
	}
}

// matrices are three n*n uint64 matrices filling a cache footprint.
type matrices struct {
	n       int
	a, b, c []uint64
}

func newMatrices(footprintKB int) *matrices {
	n := max(2, int(math.Sqrt(float64(footprintKB*1024)/24)))
	m := &matrices{n: n, a: make([]uint64, n*n), b: make([]uint64, n*n), c: make([]uint64, n*n)}
	for i := range m.a {
		m.a[i], m.b[i] = uint64(i)|1, bits.RotateLeft64(uint64(i), 7)
	}
	return m
}

// multiply computes c = a*b the naive O(n^3) way.
func (m *matrices) multiply() {
	n := m.n
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s uint64
			for k := 0; k < n; k++ {
				s += m.a[i*n+k] * m.b[k*n+j]
			}
			m.c[i*n+j] = s
		}
	}
	spinSink.Store(m.c[n*n-1])
}
