package guest

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
	"github.com/ktstr-go/ktstr/pkg/workload"
	"golang.org/x/sys/unix"
)

// WorkerArg is argv[1] of a worker process: the init re-executes itself as
// "/init WorkerArg SPEC-JSON".
const WorkerArg = "__ktstr_worker"

// Worker file descriptors (set up by the init).
const (
	workerCtlFD  = 0 // commands from the init: one 'R' byte per report request
	workerRepFD  = 1 // reports to the init: one JSON line each
	workerPeerRd = 3 // pairs: read from the partner; futex work: the shared page
	workerPeerWr = 4 // pairs: write to the partner
)

// WorkerSpec is what a worker process is told to do.
type WorkerSpec struct {
	Work      scenario.Work `json:"work"`
	Initiator bool          `json:"initiator,omitempty"` // pairs: sends first
	Index     int           `json:"index,omitempty"`     // groups: place in the group (0: the messenger)
}

// workerReport is one line on the report pipe. Seq is the number of
// report requests the worker has served, so the init can drop stale ones.
type workerReport struct {
	Seq     uint64             `json:"seq"`
	Metrics wire.WorkerMetrics `json:"m"`
}

func nanotime() int64 { return workload.Now() }

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
	rec := workload.NewRecorder(workload.ReadStamp())
	rec.SetUnit(spec.Work.Unit())
	var served uint64
	enc := json.NewEncoder(os.NewFile(workerRepFD, "report"))
	// Seq 0 says hello: the worker runs and listens for requests.
	if err := enc.Encode(workerReport{Seq: 0, Metrics: rec.Snapshot(workload.ReadStamp())}); err != nil {
		return 3
	}
	serve := func() {
		if req := requested.Load(); req > served {
			served = req
			if err := enc.Encode(workerReport{Seq: served, Metrics: rec.Snapshot(workload.ReadStamp())}); err != nil {
				os.Exit(3)
			}
			rec.Reset(workload.ReadStamp())
		}
	}
	idx := spec.Index
	if spec.Work.Paired() && !spec.Initiator {
		idx = 1
	}
	return workload.Run(spec.Work, &workload.Env{Rec: rec, Serve: serve, PeerRd: workerPeerRd, PeerWr: workerPeerWr, Index: idx})
}
