package monitor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/ktstr-go/ktstr/pkg/kernelsym"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

// Sampler reads one MonitorSample at a time from a located guest.
type Sampler struct {
	g    *Guest
	k    *kernelsym.Kernel
	l    *kernelsym.Layout
	want int // CPUs asked for (0: all)
	seq  uint64
	buf  []byte
	// VCPUTime, when set, returns the host CPU time (ns) each vCPU
	// thread has used, indexed by CPU; nil entries or a nil func mean
	// unknown. PreemptNS is the least CPU time a vCPU must get between
	// samples to count as running.
	VCPUTime  func() []int64
	PreemptNS int64
	lastVT    []int64
	// exitKind is the last error-or-unregister exit kind Watch saw
	// while the scheduler was leaving; kept until it is enabled again,
	// because the kernel forgets it once the disable completes.
	exitKind int64
	watching bool
	// WatchdogOverride, when above 0, is the sched_ext watchdog timeout
	// the sampler writes into the guest kernel (overrideWatchdog); the
	// guest memory must be writable. Logf, when set, hears what it did.
	WatchdogOverride time.Duration
	Logf             func(format string, a ...any)
	wd               watchdogState
}

// watchdogState follows one enabled scheduler for the override.
type watchdogState struct {
	active    bool   // the override was applied to the current scheduler
	wrote     uint64 // the scx_watchdog_timestamp value last written
	checkedIn bool   // the kernel's watchdog work has run since
	failed    bool   // a write failed (said once)
}

// Watching reports whether Watch has anything to look for: a sched_ext
// scheduler was enabled (or leaving) at the last read.
func (s *Sampler) Watching() bool { return s.watching }

// Watch reads only the sched_ext state and exit kind: cheap enough to call
// far more often than Sample, so that an exit whose "disabling" window is
// shorter than the sample interval is still caught.
func (s *Sampler) Watch() {
	if !s.k.HasSchedExt() {
		return
	}
	st, err := s.g.mem.U32(s.g.ImagePA(s.k.Symbols["scx_ops_enable_state_var"]))
	if err != nil {
		return
	}
	name := s.l.EnableStates[int64(int32(st))]
	s.watching = name != "SCX_OPS_DISABLED"
	if name == "SCX_OPS_ENABLED" {
		s.exitKind = 0
		return
	}
	if k := s.readExitKind(); k > 1 {
		s.exitKind = k
	}
}

// NewSampler returns a sampler over cpus CPUs (0: the guest's nr_cpu_ids,
// which is also the upper bound).
func NewSampler(g *Guest, cpus int) *Sampler {
	l := g.k.Layout
	span := max(l.RqNrRunning.Off+l.RqNrRunning.Size, l.RqClock.Off+l.RqClock.Size, l.RqCurr.Off+l.RqCurr.Size,
		l.RqScxNrRunning.Off+l.RqScxNrRunning.Size, l.RqScxLocalNr.Off+l.RqScxLocalNr.Size)
	return &Sampler{g: g, k: g.k, l: l, want: cpus, buf: make([]byte, span),
		PreemptNS: 10 * 1e9 / int64(g.k.HZ)}
}

// CPUs is how many CPUs the next sample covers.
func (s *Sampler) CPUs() int {
	if s.want <= 0 || s.want > s.g.NrCPUs() {
		return s.g.NrCPUs()
	}
	return s.want
}

func field(b []byte, f kernelsym.Field) uint64 {
	if !f.OK() || int(f.Off+f.Size) > len(b) {
		return 0
	}
	v := b[f.Off : f.Off+f.Size]
	switch f.Size {
	case 1:
		return uint64(v[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(v))
	case 4:
		return uint64(binary.LittleEndian.Uint32(v))
	case 8:
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// cString turns a fixed-size kernel char array into printable text.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, string(b))
}

// Sample reads every CPU's runqueue and the global sched_ext state.
// elapsed is stamped into the sample. It first re-reads the globals the
// kernel sets while it boots (direct-map base, paging depth, CPU count,
// per-CPU offsets), so a kernel found early is followed as it comes up.
func (s *Sampler) Sample(elapsed uint64) (*wire.MonitorSample, error) {
	if err := s.g.Refresh(); err != nil {
		return nil, err
	}
	rqs := make([]uint64, s.CPUs())
	for cpu := range rqs {
		off, err := s.g.PerCPUOffset(cpu)
		if err != nil {
			return nil, err
		}
		rqs[cpu] = s.k.Symbols["runqueues"] + off
	}
	ms := &wire.MonitorSample{Seq: s.seq, ElapsedNS: elapsed, CPUs: make([]wire.CPUSample, len(rqs))}
	var vt []int64
	if s.VCPUTime != nil {
		vt = s.VCPUTime()
	}
	l := s.l
	for cpu, rq := range rqs {
		if err := s.g.Read(rq, s.buf); err != nil {
			return nil, fmt.Errorf("cpu %d runqueue at %#x: %w", cpu, rq, err)
		}
		c := wire.CPUSample{
			CPU:       cpu,
			NrRunning: uint32(field(s.buf, l.RqNrRunning)),
			ClockNS:   field(s.buf, l.RqClock),
			ScxNrRun:  uint32(field(s.buf, l.RqScxNrRunning)),
			LocalDSQ:  uint32(field(s.buf, l.RqScxLocalNr)),
		}
		if curr := field(s.buf, l.RqCurr); curr != 0 {
			var pid [4]byte
			if s.g.Read(curr+uint64(l.TaskPID.Off), pid[:]) == nil {
				c.CurrPID = int32(binary.LittleEndian.Uint32(pid[:]))
			}
			comm := make([]byte, l.TaskComm.Size)
			if s.g.Read(curr+uint64(l.TaskComm.Off), comm) == nil {
				c.CurrComm = cString(comm)
			}
		}
		if cpu < len(vt) && cpu < len(s.lastVT) && vt[cpu] >= 0 && s.lastVT[cpu] >= 0 {
			c.Preempted = vt[cpu]-s.lastVT[cpu] < s.PreemptNS
		}
		ms.CPUs[cpu] = c
	}
	s.lastVT = vt
	s.scx(ms)
	s.seq++
	return ms, nil
}

func enumName(vals map[int64]string, v int64, prefix string) string {
	if n, ok := vals[v]; ok {
		return strings.ToLower(strings.TrimPrefix(n, prefix))
	}
	return fmt.Sprintf("unknown(%d)", v)
}

// overrideWatchdog writes WatchdogOverride (in jiffies) into
// scx_watchdog_timeout while a scheduler is enabled, as upstream ktstr
// does, so that the kernel's own stall watchdog fires after that long
// whatever timeout the scheduler asked for (6.12: ops.timeout_ms, 30 s by
// default).
//
// The kernel arms its watchdog work at enable time with half the
// scheduler's timeout, and scx_tick() fails the scheduler when
// scx_watchdog_timestamp (set by that work) is older than the timeout. A
// shorter timeout written before the work first runs would fail every
// scheduler with "watchdog failed to check in"; so until the work has run
// once (scx_watchdog_timestamp changes to a value the sampler did not
// write), the sampler also refreshes scx_watchdog_timestamp to jiffies.
// From then on the work re-arms itself with the new half period. The
// override thus takes effect at the kernel watchdog's first check, half
// the scheduler's own timeout after it enabled.
func (s *Sampler) overrideWatchdog() {
	if s.WatchdogOverride <= 0 || s.wd.failed {
		return
	}
	sy, g := s.k.Symbols, s.g
	ta, ok1 := sy["scx_watchdog_timeout"]
	tsa, ok2 := sy["scx_watchdog_timestamp"]
	ja, ok3 := sy["jiffies"]
	fail := func(err error) {
		s.wd.failed = true
		if s.Logf != nil {
			s.Logf("sched_ext watchdog override: %v; the scheduler's own timeout stays", err)
		}
	}
	if !ok1 || !ok2 || !ok3 {
		fail(fmt.Errorf("the kernel lacks scx_watchdog_timeout, scx_watchdog_timestamp or jiffies (a 6.12-6.x layout is needed)"))
		return
	}
	want := max(uint64(s.WatchdogOverride)*uint64(s.k.HZ)/uint64(time.Second), 1)
	cur, err := g.mem.U64(g.ImagePA(ta))
	if err != nil {
		fail(err)
		return
	}
	if cur != want {
		if err := g.mem.PutU64(g.ImagePA(ta), want); err != nil {
			fail(err)
			return
		}
		if s.Logf != nil && !s.wd.active {
			s.Logf("sched_ext watchdog timeout set to %s in guest memory (the scheduler's was %.3fs); effective from the kernel watchdog's first check",
				s.WatchdogOverride, float64(cur)/float64(s.k.HZ))
		}
	}
	s.wd.active = true
	if s.wd.checkedIn {
		return
	}
	ts, err := g.mem.U64(g.ImagePA(tsa))
	if err != nil {
		fail(err)
		return
	}
	if s.wd.wrote != 0 && ts != s.wd.wrote {
		s.wd.checkedIn = true // the kernel's watchdog work ran and re-armed
		return
	}
	j, err := g.mem.U64(g.ImagePA(ja))
	if err == nil {
		err = g.mem.PutU64(g.ImagePA(tsa), j)
	}
	if err != nil {
		fail(err)
		return
	}
	s.wd.wrote = j
}

// scx fills the global sched_ext fields (6.12 layout: scx_ops_enable_state_var,
// scx_ops, scx_watchdog_timeout, scx_exit_kind, scx_exit_info).
func (s *Sampler) scx(ms *wire.MonitorSample) {
	if !s.k.HasSchedExt() {
		return
	}
	sy, l, g := s.k.Symbols, s.l, s.g
	st, err := g.mem.U32(g.ImagePA(sy["scx_ops_enable_state_var"]))
	if err != nil {
		return
	}
	ms.ScxState = enumName(l.EnableStates, int64(int32(st)), "SCX_OPS_")
	s.watching = ms.ScxState != "disabled"
	if ms.ScxState == "enabled" {
		s.overrideWatchdog()
	} else {
		s.wd = watchdogState{}
	}
	if a, ok := sy["scx_watchdog_timeout"]; ok {
		if j, err := g.mem.U64(g.ImagePA(a)); err == nil && j < 1<<40 {
			ms.WatchdogTimeout = j * (1e9 / uint64(s.k.HZ))
		}
	}
	if a, ok := sy["scx_ops"]; ok && l.OpsName.OK() && ms.ScxState != "disabled" {
		if b, err := g.mem.Slice(g.ImagePA(a+uint64(l.OpsName.Off)), uint64(l.OpsName.Size)); err == nil {
			ms.ScxOps = cString(b)
		}
	}
	if ms.ScxState == "enabled" {
		s.exitKind = 0
		return
	}
	kind := s.readExitKind()
	if kind <= 1 && s.exitKind > 1 {
		kind = s.exitKind
	}
	if _, known := l.ExitKinds[kind]; known && kind > 0 {
		ms.ScxExitKind = int(kind)
		ms.ScxExit = enumName(l.ExitKinds, kind, "SCX_EXIT_")
	}
}

// readExitKind returns the exit kind the kernel holds now: scx_exit_kind
// while disabling (6.12 resets it to DONE afterwards), else the exit
// info's kind while that is still allocated.
func (s *Sampler) readExitKind() int64 {
	sy, l, g := s.k.Symbols, s.l, s.g
	kind := int64(0)
	if a, ok := sy["scx_exit_kind"]; ok {
		if v, err := g.mem.U32(g.ImagePA(a)); err == nil {
			kind = int64(int32(v))
		}
	}
	if a, ok := sy["scx_exit_info"]; ok && l.ExitInfoKind.OK() && kind <= 1 {
		if p, err := g.mem.U64(g.ImagePA(a)); err == nil && p != 0 {
			var b [4]byte
			if g.Read(p+uint64(l.ExitInfoKind.Off), b[:]) == nil {
				if v := int64(int32(binary.LittleEndian.Uint32(b[:]))); l.ExitKinds[v] != "" {
					kind = v
				}
			}
		}
	}
	return kind
}
