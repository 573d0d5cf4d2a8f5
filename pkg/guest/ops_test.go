package guest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ktstr-go/ktstr/pkg/scenario"
	"github.com/ktstr-go/ktstr/pkg/wire"
)

func TestAllowedOf(t *testing.T) {
	cg := &rtCgroup{cpus: []int{0, 1, 2, 3}}
	cases := []struct {
		aff, want []int
	}{
		{nil, []int{0, 1, 2, 3}},
		{[]int{1, 3, 7}, []int{1, 3}},
		{[]int{6, 7}, []int{0, 1, 2, 3}}, // no intersection: the kernel falls back to the cpuset
	}
	for _, c := range cases {
		w := &rtWorker{cg: cg, affinity: c.aff}
		if got := allowedOf(w); !reflect.DeepEqual(got, c.want) {
			t.Errorf("affinity %v: got %v, want %v", c.aff, got, c.want)
		}
	}
	if got := union([]int{3, 1}, []int{2, 3}); !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Errorf("union %v", got)
	}
}

func TestEvaluateAllowed(t *testing.T) {
	ws := []wire.WorkerMetrics{
		{Worker: 0, Work: "spin", Iterations: 5, CPUs: []int{0, 2}, WallNS: 2e9, CPUTimeNS: 2e9},
		{Worker: 1, Work: "spin", Iterations: 5, CPUs: []int{1}, WallNS: 2e9, CPUTimeNS: 2e9},
	}
	// The cpuset is now 0-1, but worker 0 was allowed 0,2 during the
	// window (a cpuset change while the step held): no isolation failure.
	s := CgroupSample{Name: "a", Cpuset: []int{0, 1}, Workers: ws, Allowed: [][]int{{0, 1, 2}, {1}}}
	_, res := Evaluate(0, &s, scenario.Checks{})
	for _, r := range res {
		if r.Name == CheckIsolation && !r.Pass {
			t.Fatalf("isolation failed: %+v", r)
		}
	}
	s.Allowed = [][]int{{0}, {1}}
	_, res = Evaluate(0, &s, scenario.Checks{})
	found := false
	for _, r := range res {
		if r.Name == CheckIsolation {
			found = true
			if r.Pass || r.Observed != 1 {
				t.Fatalf("isolation should fail on CPU 2: %+v", r)
			}
		}
	}
	if !found {
		t.Fatal("no isolation check")
	}
}

func TestProgIDsFromFdinfo(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"0":  "pos:\t0\nflags:\t02\nmnt_id:\t15\n",
		"3":  "pos:\t0\nflags:\t02000002\nprog_type:\t27\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t42\n",
		"4":  "prog_id:\t7\n",
		"5":  "link_type:\tstruct_ops\nlink_id:\t3\nprog_id:\t42\n",
		"6":  "prog_id:\tx\n",
		"7":  "prog_id:\t0\n",
		"8":  "prog_id:\t99999999999\n",
		"9":  "map_type:\t26\nmap_id:\t12\n",
		"10": "",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := ProgIDsFromFdinfo(dir)
	if err != nil || !reflect.DeepEqual(ids, []uint32{7, 42}) {
		t.Fatalf("got %v %v", ids, err)
	}
	if _, err := ProgIDsFromFdinfo(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing dir accepted")
	}
}

func FuzzParseFdinfoProgID(f *testing.F) {
	f.Add([]byte("prog_id:\t42\n"))
	f.Add([]byte("prog_type:\t1\nprog_id: 4294967295\n"))
	f.Add([]byte("prog_id:4294967296"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ok := parseFdinfoProgID(b)
		if ok && id == 0 {
			t.Fatalf("%q: id 0 accepted", b)
		}
	})
}

func TestHoldStepRepeats(t *testing.T) {
	// A repeater whose op fails ends the hold with the op's error; no
	// repeater holds for the whole time.
	r := &runner{cgs: map[string]*rtCgroup{}}
	rp := &repeater{op: scenario.Op{Op: scenario.OpClearCpuset, Cgroup: "gone"}, every: 10 * time.Millisecond, next: time.Now(), n: 1}
	if _, err := r.holdStep(time.Second, []*repeater{rp}); err == nil {
		t.Fatal("failing repeated op did not end the hold")
	}
	if why, err := r.holdStep(20*time.Millisecond, nil); why != "" || err != nil {
		t.Fatalf("plain hold: %q %v", why, err)
	}
}
