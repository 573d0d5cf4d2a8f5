package qemu

import (
	"fmt"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
	"strings"
	"testing"

	"github.com/ktstr-go/ktstr/pkg/kvmprobe"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

func TestShapeOf(t *testing.T) {
	for _, c := range []struct {
		shape   string
		machine string
		args    string
		nodes   int
	}{
		{"1n1l2c1t", "microvm", "-smp cpus=2,sockets=1,cores=2,threads=1", 0},
		{"1n1l2c2t", "microvm", "-smp cpus=4,sockets=1,cores=2,threads=2", 0},
		{"1n2l2c1t", "pc", "-smp cpus=4,sockets=1,dies=2,cores=2,threads=1", 0},
		{"2n4l2c1t", "pc", "-smp cpus=8,sockets=2,dies=2,cores=2,threads=1 -numa node,nodeid=0,cpus=0-3,memdev=node0 -numa node,nodeid=1,cpus=4-7,memdev=node1 -numa dist,src=0,dst=1,val=20", 2},
		{"3n3l1c1t", "pc", "-smp cpus=3,sockets=3,dies=1,cores=1,threads=1 -numa node,nodeid=0,cpus=0-0,memdev=node0 -numa node,nodeid=1,cpus=1-1,memdev=node1 -numa node,nodeid=2,cpus=2-2,memdev=node2 -numa dist,src=0,dst=1,val=20 -numa dist,src=0,dst=2,val=20 -numa dist,src=1,dst=2,val=20", 3},
	} {
		topo, err := topology.FromText(c.shape)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ShapeOf(topo, 1<<30)
		if err != nil {
			t.Fatalf("%s: %v", c.shape, err)
		}
		if s.Machine != c.machine || strings.Join(s.SMP, " ") != c.args || len(s.NodeSizes) != c.nodes {
			t.Errorf("%s: %s %q %v; want %s %q, %d nodes", c.shape, s.Machine, strings.Join(s.SMP, " "), s.NodeSizes, c.machine, c.args, c.nodes)
		}
		var sum uint64
		for _, n := range s.NodeSizes {
			sum += n
		}
		if c.nodes > 0 && sum != 1<<30 {
			t.Errorf("%s: node sizes %v do not add up to 1 GiB", c.shape, s.NodeSizes)
		}
	}
}

func TestArgs(t *testing.T) {
	o := Options{Kernel: "/k", Initramfs: "/i", SMP: []string{"-smp", "cpus=4,sockets=1,dies=2,cores=2,threads=1"}, Machine: "pc",
		MemoryMiB: 1024, NodeMemFiles: []NodeMem{{"/m/0", 512 << 20}, {"/m/1", 512 << 20}}, MemFile: "/ignored", Accel: "tcg,thread=single",
		Cmdline: "ktstr.hold=1", NoBaseCmdline: true}
	a := strings.Join(Args(&o, "socket,path=/s"), " ")
	for _, w := range []string{
		"-object memory-backend-file,id=node0,size=536870912,mem-path=/m/0,share=on",
		"-object memory-backend-file,id=node1,size=536870912,mem-path=/m/1,share=on",
		"-M pc -accel tcg,thread=single", "-smp cpus=4,sockets=1,dies=2,cores=2,threads=1 -m 1024",
		"-device virtio-serial-pci", "-chardev socket,path=/s,id=ktstr", "-append ktstr.hold=1",
	} {
		if !strings.Contains(a, w) {
			t.Errorf("args lack %q:\n%s", w, a)
		}
	}
	if strings.Contains(a, "/ignored") {
		t.Errorf("MemFile used beside NodeMemFiles: %s", a)
	}
	o = Options{Kernel: "/k", Initramfs: "/i", MemFile: "/m/ram", MemoryMiB: 256}
	a = strings.Join(Args(&o, ""), " ")
	for _, w := range []string{"memory-backend-file,id=mem,size=256M,mem-path=/m/ram,share=on", "-M microvm,memory-backend=mem -accel tcg,thread=single -cpu max -smp 2", "virtio-serial-device", "-append " + BaseCmdline} {
		if !strings.Contains(a, w) {
			t.Errorf("args lack %q:\n%s", w, a)
		}
	}
	if strings.Contains(a, "id=ktstr") {
		t.Errorf("stream port without a stream backend: %s", a)
	}
}

func TestChoose(t *testing.T) {
	hw := func() kvmprobe.Result {
		return kvmprobe.Result{Kind: kvmprobe.Hardware, Ratio: 0.9, GuestRate: 9e8, HostRate: 1e9, Threshold: kvmprobe.Threshold, Reason: "hw"}
	}
	emu := func() kvmprobe.Result {
		return kvmprobe.Result{Kind: kvmprobe.Emulated, Ratio: 0.001, GuestRate: 1e6, HostRate: 1e9, Threshold: kvmprobe.Threshold, Reason: "emulated"}
	}
	none := func() kvmprobe.Result {
		return kvmprobe.Result{Kind: kvmprobe.None, Reason: "open /dev/kvm: no such file"}
	}
	probed := false
	never := func() kvmprobe.Result { probed = true; return none() }
	haveQEMU := true
	if _, err := Find(); err != nil {
		haveQEMU = false
	}
	for _, c := range []struct {
		mode  string
		probe func() kvmprobe.Result
		qemu  bool
		kvm   bool
		why   string
	}{
		{"kvm", never, false, false, "--vmm kvm"},
		{"auto", hw, false, false, "hw"},
		{"auto", emu, true, false, "emulated"},
		{"auto", none, true, false, "no such file"},
		{"qemu", hw, true, true, "hw"},
		{"qemu", emu, true, false, "ratio 0.0010"},
	} {
		ch, err := Choose(c.mode, c.probe)
		if c.qemu && !haveQEMU {
			if err == nil || !strings.Contains(err.Error(), "needs QEMU") {
				t.Errorf("%s without QEMU: %v", c.mode, err)
			}
			continue
		}
		if err != nil || ch.QEMU != c.qemu || ch.KVM != c.kvm || !strings.Contains(ch.Why, c.why) {
			t.Errorf("Choose(%s): %+v %v; want qemu=%v kvm=%v why~%q", c.mode, ch, err, c.qemu, c.kvm, c.why)
		}
	}
	if probed {
		t.Error("--vmm kvm ran the probe")
	}
	if _, err := Choose("xen", hw); err == nil {
		t.Error("Choose(xen) accepted")
	}
}

func TestLockedBufferBounded(t *testing.T) {
	b := lockedBuffer{max: 100}
	for i := 0; i < 1000; i++ {
		b.Write([]byte(strings.Repeat("x", 9) + "\n"))
	}
	if n := len(b.Bytes()); n < 100 || n > 200 {
		t.Errorf("bounded buffer holds %d bytes, want 100..200", n)
	}
}

// TestStartPinned starts a real child pinned to one CPU: it sees only that
// CPU in its affinity mask, and this thread's mask is restored.
func TestStartPinned(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Skipf("SKIP: sched_getaffinity: %v", err)
	}
	cpu := -1
	for i := 0; i < 1024; i++ {
		if before.IsSet(i) {
			cpu = i
		}
	}
	cmd := exec.Command("sh", "-c", "grep Cpus_allowed_list /proc/self/status")
	var out strings.Builder
	cmd.Stdout = &out
	if err := startPinned(cmd, []int{cpu}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got := strings.TrimSpace(out.String()); got != fmt.Sprintf("Cpus_allowed_list:\t%d", cpu) {
		t.Errorf("child affinity %q, want CPU %d", got, cpu)
	}
	var after unix.CPUSet
	unix.SchedGetaffinity(0, &after)
	if after != before {
		t.Errorf("affinity not restored: %d CPUs -> %d", before.Count(), after.Count())
	}
}
