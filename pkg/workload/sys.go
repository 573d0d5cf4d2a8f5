package workload

import (
	"bytes"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Now is the guest's CLOCK_MONOTONIC in nanoseconds (the runtime's clock,
// read without a system call).
func Now() int64 { return nanotime() }

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// useFastCPU says whether getcpu may read TSC_AUX instead of making a
// system call: the CPU has RDTSCP and, checked once at start, TSC_AUX
// agrees with getcpu(2) (a hypervisor or kernel that leaves it unset
// would report CPU 0 for ever).
var useFastCPU = func() bool {
	if !hasRDTSCP() {
		return false
	}
	agreed := 0
	for try := 0; try < 64 && agreed < 8; try++ {
		a, b, c := sysGetcpu(), fastCPU(), sysGetcpu()
		if a != c {
			continue // migrated in between: try again
		}
		if a != b || a < 0 {
			return false
		}
		agreed++
	}
	return agreed == 8
}()

// getcpu is the CPU the calling thread runs on.
func getcpu() int {
	if useFastCPU {
		return fastCPU()
	}
	return sysGetcpu()
}

func sysGetcpu() int {
	var cpu, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return -1
	}
	return int(cpu)
}

// ReadStamp reads the calling thread's clocks and schedstat.
func ReadStamp() Stamp {
	st := Stamp{Mono: nanotime(), CPU: threadCPU(), RunDelay: -1}
	if b, err := os.ReadFile("/proc/thread-self/schedstat"); err == nil {
		if d, n, ok := parseSchedstat(b); ok {
			st.RunDelay, st.Timeslices = d, n
		}
	}
	return st
}

// parseSchedstat parses /proc/PID/schedstat ("run_ns wait_ns timeslices"):
// the time spent waiting on a run queue and the number of timeslices.
func parseSchedstat(b []byte) (runDelay, timeslices int64, ok bool) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return 0, 0, false
	}
	var v [3]int64
	for i, s := range f {
		n, err := strconv.ParseUint(string(s), 10, 63)
		if err != nil {
			return 0, 0, false
		}
		v[i] = int64(n)
	}
	return v[1], v[2], true
}

// futex(2) operations on a shared (not FUTEX_PRIVATE) word: the page is
// shared between processes.
const (
	futexWaitOp = 0
	futexWakeOp = 1
)

// futexWait sleeps while *addr == val, at most timeoutNS (0: forever).
func futexWait(addr *uint32, val uint32, timeoutNS int64) {
	var ts *unix.Timespec
	if timeoutNS > 0 {
		t := unix.NsecToTimespec(timeoutNS)
		ts = &t
	}
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
}

// futexWake wakes up to n waiters on addr.
func futexWake(addr *uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(n), 0, 0, 0)
}

// forkExit forks a child that exits at once (status 0) and returns its
// pid. The child runs nothing but the exit system call, so a fork of the
// multi-threaded Go runtime is safe.
//
//go:nosplit
func forkExit() (int, unix.Errno) {
	pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if pid == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(pid), 0
}
