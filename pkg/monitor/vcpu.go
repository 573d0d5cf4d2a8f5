package monitor

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// VCPUThreads reads host CPU time of a VMM's vCPU threads from /proc. A
// vCPU thread is one whose name starts "CPU N/" (QEMU names them "CPU
// 0/KVM" or "CPU 0/TCG"; ktstr-boot names its threads the same way). Time
// comes from /proc/PID/task/TID/schedstat (nanoseconds on CPU).
type VCPUThreads struct {
	proc string // "/proc", replaceable in tests
	pid  int
	tids map[int]int // cpu -> tid
}

// NewVCPUThreads watches the threads of process pid.
func NewVCPUThreads(pid int) *VCPUThreads { return &VCPUThreads{proc: "/proc", pid: pid} }

func (v *VCPUThreads) scan() {
	v.tids = map[int]int{}
	dir := filepath.Join(v.proc, strconv.Itoa(v.pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(dir, e.Name(), "comm"))
		if err != nil {
			continue
		}
		if cpu, ok := parseVCPUName(string(bytes.TrimSpace(comm))); ok {
			v.tids[cpu] = tid
		}
	}
}

func parseVCPUName(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, "CPU ")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n >= maxCPUs {
		return 0, false
	}
	return n, true
}

// Times returns each vCPU's CPU time in nanoseconds, -1 where unknown.
func (v *VCPUThreads) Times() []int64 {
	if v.tids == nil {
		v.scan()
	}
	n := 0
	for cpu := range v.tids {
		n = max(n, cpu+1)
	}
	out := make([]int64, n)
	missing := false
	for i := range out {
		out[i] = -1
	}
	for cpu, tid := range v.tids {
		b, err := os.ReadFile(filepath.Join(v.proc, strconv.Itoa(v.pid), "task", strconv.Itoa(tid), "schedstat"))
		if err != nil {
			missing = true
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil && ns >= 0 {
			out[cpu] = ns
		}
	}
	if missing || len(v.tids) == 0 {
		v.tids = nil // threads come and go while a VMM starts: rescan next time
	}
	return out
}

// FindMapper returns the pid of another process that has the file at path
// mapped (the VMM whose guest RAM it is), or 0. It reads /proc/*/maps once.
func FindMapper(path string) int {
	return findMapper("/proc", path, os.Getpid())
}

func findMapper(proc, path string, self int) int {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0
	}
	needle := []byte(" " + abs + "\n")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "maps"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, needle) {
			return pid
		}
	}
	return 0
}
