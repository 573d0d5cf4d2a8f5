package guest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"golang.org/x/sys/unix"
)

// WorkerArg is argv[1] of a worker process: the init re-executes itself as
// "/init WorkerArg SPEC-JSON".
const WorkerArg = "__ktstr_worker"

// Worker file descriptors (set up by the init).
const (
	workerCtlFD  = 0 // commands from the init: one 'R' byte per report request
	workerRepFD  = 1 // reports to the init: one JSON line each
	workerPeerRd = 3 // ping-pong: read from the partner
	workerPeerWr = 4 // ping-pong: write to the partner
)

// WorkerSpec is what a worker process is told to do.
type WorkerSpec struct {
	Work      scenario.Work `json:"work"`
	Initiator bool          `json:"initiator,omitempty"` // ping-pong: sends first
}

// workerReport is one line on the report pipe. Seq is the number of
// report requests the worker has served, so the init can drop stale ones.
type workerReport struct {
	Seq     uint64             `json:"seq"`
	Metrics wire.WorkerMetrics `json:"m"`
}

//go:linkname nanotime runtime.nanotime
func nanotime() int64

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

func getcpu() int {
	var cpu, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return -1
	}
	return int(cpu)
}

// spinSink keeps the spin loop's result alive.
var spinSink atomic.Uint64

func spin(n int) {
	x := uint64(n) | 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	spinSink.Store(x)
}

// RunWorker is the worker process's main. It returns the process exit code.
func RunWorker(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "ktstr worker: want exactly one argument (the spec)")
		return 2
	}
	var spec WorkerSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "ktstr worker: bad spec: %v\n", err)
		return 2
	}
	runtime.LockOSThread()
	var requested atomic.Uint64
	go func() {
		var b [64]byte
		for {
			n, err := unix.Read(workerCtlFD, b[:])
			if n <= 0 && err != unix.EINTR {
				os.Exit(0) // the init closed the control pipe: the run is over
			}
			for _, c := range b[:max(n, 0)] {
				if c == 'R' {
					requested.Add(1)
				}
			}
		}
	}()
	rec := NewRecorder(nanotime(), threadCPU())
	var served uint64
	enc := json.NewEncoder(os.NewFile(workerRepFD, "report"))
	// Seq 0 says hello: the worker runs and listens for requests.
	if err := enc.Encode(workerReport{Seq: 0, Metrics: rec.Snapshot(nanotime(), threadCPU())}); err != nil {
		return 3
	}
	serve := func() {
		if req := requested.Load(); req > served {
			served = req
			now := nanotime()
			cpuNS := threadCPU()
			if err := enc.Encode(workerReport{Seq: served, Metrics: rec.Snapshot(now, cpuNS)}); err != nil {
				os.Exit(3)
			}
			rec.Reset(nanotime(), threadCPU())
		}
	}
	var buf [8]byte
	peerSend := func() {
		binary.LittleEndian.PutUint64(buf[:], uint64(nanotime()))
		if _, err := unix.Write(workerPeerWr, buf[:]); err != nil {
			os.Exit(4)
		}
	}
	peerRecv := func() {
		for got := 0; got < 8; {
			n, err := unix.Read(workerPeerRd, buf[got:])
			if err == unix.EINTR {
				continue
			}
			if n <= 0 {
				os.Exit(4) // partner gone
			}
			got += n
		}
		rec.Wake(nanotime() - int64(binary.LittleEndian.Uint64(buf[:])))
	}
	switch spec.Work.Type {
	case scenario.WorkPingPong:
		if spec.Work.Mode == "futex" {
			return futexPingPong(spec.Initiator, rec, serve)
		}
		_ = unix.SetNonblock(workerPeerRd, false)
		_ = unix.SetNonblock(workerPeerWr, false)
		if spec.Initiator {
			peerSend()
		}
		for {
			peerRecv()
			spin(256)
			rec.Mark(nanotime(), getcpu())
			serve()
			peerSend()
		}
	case scenario.WorkBursty:
		run := int64(spec.Work.RunMS) * int64(time.Millisecond)
		sleep := time.Duration(spec.Work.SleepMS) * time.Millisecond
		for {
			for t0 := nanotime(); nanotime()-t0 < run; {
				spin(1 << 12)
				rec.Mark(nanotime(), getcpu())
				serve()
			}
			due := nanotime() + int64(sleep)
			ts := unix.NsecToTimespec(int64(sleep))
			for unix.Nanosleep(&ts, &ts) == unix.EINTR {
			}
			now := nanotime()
			rec.Wake(now - due)
			rec.Skip(due)
		}
	case scenario.WorkYield:
		for {
			for i := 0; i < 16; i++ {
				spin(128)
				unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			rec.Mark(nanotime(), getcpu())
			serve()
		}
	default: // spin
		for {
			spin(1 << 14)
			rec.Mark(nanotime(), getcpu())
			serve()
		}
	}
}

// futex(2) operations (shared, not FUTEX_PRIVATE: the page is shared
// between processes).
const (
	futexWait = 0
	futexWake = 1
)

// futexPingPong alternates with its partner through a futex word in a
// shared page (fd 3): word 0 means the initiator's turn, 1 the other's;
// the 8 bytes at offset 8 hold the sender's CLOCK_MONOTONIC timestamp.
func futexPingPong(initiator bool, rec *Recorder, serve func()) int {
	mem, err := unix.Mmap(workerPeerRd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ktstr worker: map the futex page: %v\n", err)
		return 4
	}
	word := (*atomic.Uint32)(unsafe.Pointer(&mem[0]))
	stamp := (*atomic.Int64)(unsafe.Pointer(&mem[8]))
	me, other := uint32(1), uint32(0)
	if initiator {
		me, other = 0, 1
	}
	for {
		for word.Load() != me {
			// Sleeps only while the word still says it is the other's turn.
			unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&mem[0])), futexWait, uintptr(other), 0, 0, 0)
		}
		if ts := stamp.Load(); ts != 0 {
			rec.Wake(nanotime() - ts)
		}
		spin(256)
		rec.Mark(nanotime(), getcpu())
		serve()
		stamp.Store(nanotime())
		word.Store(other)
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&mem[0])), futexWake, 1, 0, 0, 0)
	}
}
