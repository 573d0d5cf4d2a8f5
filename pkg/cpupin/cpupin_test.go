package cpupin

import (
	"reflect"
	"runtime"
	"testing"
)

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []int
		ok   bool
		err  bool
	}{
		{"", nil, false, false},
		{"0-1,4", []int{0, 1, 4}, true, false},
		{"1-0", nil, false, true},
		{"x", nil, false, true},
	} {
		t.Setenv(EnvCPUs, tc.env)
		cpus, ok, err := FromEnv()
		if (err != nil) != tc.err || ok != tc.ok || !reflect.DeepEqual(cpus, tc.want) {
			t.Errorf("KTSTR_CPUS=%q: %v %v %v", tc.env, cpus, ok, err)
		}
	}
}

func TestFor(t *testing.T) {
	cpus := []int{0, 1, 4}
	for i, want := range []int{0, 1, 4, 0, 1} {
		if got := For(cpus, i); got != want {
			t.Errorf("For(%v, %d) = %d, want %d", cpus, i, got, want)
		}
	}
}

// TestThread pins a locked thread to its first allowed CPU and reads it
// back; an out-of-range CPU is refused.
func TestThread(t *testing.T) {
	done := make(chan error, 1)
	var got, allowed []int
	go func() {
		runtime.LockOSThread() // the thread is discarded when this goroutine ends
		var err error
		if allowed, err = Affinity(); err != nil {
			done <- err
			return
		}
		if err := Thread(allowed[:1]); err != nil {
			done <- err
			return
		}
		got, err = Affinity()
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != allowed[0] {
		t.Fatalf("affinity %v after pinning to %d", got, allowed[0])
	}
	for _, bad := range []int{-1, 1 << 20} {
		if err := Thread([]int{bad}); err == nil {
			t.Errorf("CPU %d accepted", bad)
		}
	}
}
