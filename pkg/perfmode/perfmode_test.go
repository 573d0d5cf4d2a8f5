package perfmode

import (
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheck(t *testing.T) {
	const GiB = 1 << 30
	host := Host{Allowed: []int{0, 1, 2, 3, 4, 5, 6, 7}, FreeHugePages: 1024, HugePagesKnown: true, CanFIFO: true}
	with := func(f func(*Host)) Host { h := host; f(&h); return h }
	tests := []struct {
		name    string
		host    Host
		vcpus   int
		mem     uint64
		want    []int
		service []int
		wantErr string
	}{
		{name: "allowed set", host: host, vcpus: 4, mem: GiB, want: []int{0, 1, 2, 3}, service: []int{4, 5, 6, 7}},
		{name: "reserved", host: with(func(h *Host) { h.Reserved = []int{4, 5, 6} }), vcpus: 2, mem: GiB, want: []int{4, 5}, service: []int{6}},
		{name: "all CPUs", host: host, vcpus: 8, mem: GiB, want: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{name: "oversubscribed", host: host, vcpus: 9, mem: GiB, wantErr: "9 vCPUs need 9 dedicated host CPUs, but this process's CPU affinity offers only 8 (0-7)"},
		{name: "oversubscribed reservation", host: with(func(h *Host) { h.Reserved = []int{2, 3} }), vcpus: 3, mem: GiB, wantErr: "KTSTR_CPUS offers only 2 (2-3)"},
		{name: "reservation outside affinity", host: with(func(h *Host) { h.Reserved = []int{7, 8} }), vcpus: 1, mem: GiB, wantErr: "may not run on"},
		{name: "no pool", host: with(func(h *Host) { h.HugePagesKnown = false }), vcpus: 1, mem: GiB, wantErr: "no 2 MiB huge page pool"},
		{name: "few huge pages", host: with(func(h *Host) { h.FreeHugePages = 100 }), vcpus: 1, mem: GiB, wantErr: "needs 512 free 2 MiB huge pages, the host has 100 free; raise /proc/sys/vm/nr_hugepages by 412"},
		{name: "odd memory", host: host, vcpus: 1, mem: GiB + 4096, wantErr: "not a multiple of 2 MiB"},
		{name: "no FIFO", host: with(func(h *Host) { h.CanFIFO = false }), vcpus: 1, mem: GiB, wantErr: "SCHED_FIFO"},
	}
	for _, tc := range tests {
		p, err := Check(tc.host, tc.vcpus, tc.mem)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: error is not one line: %q", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if cpulist.Format(p.VCPUCPU) != cpulist.Format(tc.want) || cpulist.Format(p.Service) != cpulist.Format(tc.service) || p.MemoryBytes != tc.mem {
			t.Errorf("%s: plan %+v, want vCPUs %v service %v", tc.name, p, tc.want, tc.service)
		}
	}
}

func TestCPUsText(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{{nil, "none"}, {[]int{3}, "3"}, {[]int{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"}, {[]int{1, 3, 5}, "1,3,5"}} {
		if got := cpusText(tc.in); got != tc.want {
			t.Errorf("cpusText(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReadHost(t *testing.T) {
	h, err := ReadHost(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Allowed) != runtime.NumCPU() {
		t.Errorf("allowed CPUs %v, runtime sees %d", h.Allowed, runtime.NumCPU())
	}
	if os.Geteuid() == 0 && !h.CanFIFO {
		t.Error("root cannot use SCHED_FIFO?")
	}
}

// TestHugeMemfd allocates real huge pages when the host has them and
// checks the refusal when it has none.
func TestHugeMemfd(t *testing.T) {
	h, err := ReadHost(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.HugePagesKnown {
		t.Skip("SKIP: no 2 MiB hugetlb pool on this host")
	}
	if _, err := HugeMemfd("t", 4096); err == nil {
		t.Error("unaligned size accepted")
	}
	if h.FreeHugePages < 2 {
		fd, err := HugeMemfd("ktstr-test", 4*HugePageSize+uint64(h.FreeHugePages)*HugePageSize)
		if err == nil {
			unix.Close(fd)
			t.Fatal("huge-page memory beyond the free pool was granted")
		}
		t.Logf("refusal with %d free huge pages: %v", h.FreeHugePages, err)
		return
	}
	fd, err := HugeMemfd("ktstr-test", 2*HugePageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != 2*HugePageSize {
		t.Errorf("fstat %+v %v", st, err)
	}
}

// TestPinFIFO pins a locked thread and makes it SCHED_FIFO, then undoes it.
func TestPinFIFO(t *testing.T) {
	h, err := ReadHost(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.CanFIFO {
		t.Skip("SKIP: no permission for SCHED_FIFO (needs root, CAP_SYS_NICE or RLIMIT_RTPRIO)")
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		// The thread ends with the goroutine (never unlocked), so its
		// FIFO policy and affinity die with it.
		cpu := h.Allowed[len(h.Allowed)-1]
		if err := PinFIFO(cpu); err != nil {
			done <- err
			return
		}
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			done <- err
			return
		}
		var set unix.CPUSet
		unix.SchedGetaffinity(0, &set)
		if attr.Policy != unix.SCHED_FIFO || attr.Priority != FIFOPriority || set.Count() != 1 || !set.IsSet(cpu) {
			t.Errorf("policy %d prio %d affinity count %d", attr.Policy, attr.Priority, set.Count())
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
