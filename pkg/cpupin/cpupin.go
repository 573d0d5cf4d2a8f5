package cpupin

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
)

// EnvCPUs is the environment variable that carries a reservation's CPUs.
const EnvCPUs = "KTSTR_CPUS"

// FromEnv returns the CPUs in $KTSTR_CPUS. ok is false when the variable
// is unset or empty (not run under a reservation: do not pin).
func FromEnv() (cpus []int, ok bool, err error) {
	s := os.Getenv(EnvCPUs)
	if s == "" {
		return nil, false, nil
	}
	cpus, err = cpulist.Parse(s)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", EnvCPUs, err)
	}
	if len(cpus) == 0 {
		return nil, false, nil
	}
	return cpus, true, nil
}

// For returns the host CPU for vCPU i: cpus[i mod len(cpus)], so vCPUs
// map one to one onto the reservation and wrap around when there are
// more vCPUs than CPUs. cpus must not be empty.
func For(cpus []int, i int) int { return cpus[i%len(cpus)] }

// Thread sets the calling OS thread's CPU affinity to cpus. The caller
// must have called runtime.LockOSThread and keep the goroutine on that
// thread (a vCPU run loop does). Threads and processes started afterwards
// from this thread inherit the mask; other threads are unaffected.
func Thread(cpus []int) error {
	var set unix.CPUSet
	set.Zero()
	for _, c := range cpus {
		if c < 0 || c >= len(set)*64 {
			return fmt.Errorf("pin: CPU %d out of range", c)
		}
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPUs %s: %w", cpulist.Format(cpus), err)
	}
	return nil
}

// Affinity returns the calling thread's CPUs, in order.
func Affinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("read CPU affinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
