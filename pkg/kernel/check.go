package kernel

import (
	"fmt"
	"io"
	"strings"
)

// Need says what a missing item breaks.
type Need int

const (
	// Boot: without it no guest runs to a verdict at all.
	Boot Need = iota
	// SchedExt: without it no sched_ext scheduler runs (EEVDF baselines still do).
	SchedExt
	// Feature: without it one feature is lost; runs still give verdicts.
	Feature
)

func (n Need) String() string {
	switch n {
	case Boot:
		return "boot"
	case SchedExt:
		return "sched_ext"
	}
	return "feature"
}

// Item is one thing ktstr needs from a kernel configuration: every
// symbol in Syms built in (=y; ktstr guests boot with "nomodules" and
// their initramfs holds no modules, so =m counts as missing).
type Item struct {
	Name string
	Syms []string
	Need Need
	Cost string // what is lost without it
}

// Items returns what ktstr needs, in the order check prints it.
func Items() []Item { return append([]Item(nil), items...) }

var items = []Item{
	{"sched_ext", []string{"SCHED_CLASS_EXT"}, SchedExt, "only EEVDF baselines can run"},
	{"BPF", []string{"BPF", "BPF_SYSCALL"}, SchedExt, "no bpf(2): no sched_ext scheduler can load"},
	{"BPF JIT", []string{"BPF_JIT"}, SchedExt, "sched_ext's struct_ops need the JIT: no scheduler can attach"},
	{"BTF", []string{"DEBUG_INFO_BTF"}, SchedExt, "no /sys/kernel/btf/vmlinux: CO-RE schedulers (scx_*) cannot load, and ktstr-monitor cannot read guest scheduler state from the vmlinux"},
	{"initramfs", []string{"BLK_DEV_INITRD"}, Boot, "the initramfs is not unpacked: ktstr-init and the scheduler never run"},
	{"guest init", []string{"64BIT", "BINFMT_ELF", "PROC_FS", "SYSFS", "DEVTMPFS", "TMPFS"}, Boot, "ktstr-init cannot start or mount /proc, /sys, /dev and /tmp"},
	{"cgroups", []string{"CGROUPS"}, Boot, "ktstr-init cannot mount cgroup2 and stops"},
	{"virtio-mmio command-line devices", []string{"VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES"}, Boot, "ktstr-boot's virtio_mmio.device= is ignored: no stream port, no frames, no verdict"},
	{"virtio console", []string{"VIRTIO", "VIRTIO_CONSOLE"}, Boot, "no virtio-serial port: ktstr-init cannot send frames (no verdict), no hvc0 for --shell/--exec"},
	{"8250 console", []string{"SERIAL_8250", "SERIAL_8250_CONSOLE"}, Feature, "console=ttyS0 prints nothing: boot errors and panics are invisible"},
	{"SMP", []string{"SMP"}, Feature, "one CPU only: --topology and multi-CPU scenarios cannot run"},
	{"ACPI", []string{"ACPI"}, Feature, "the kernel ignores ktstr-boot's ACPI tables (MADT, SRAT): the requested vCPU topology is not seen"},
	{"NUMA", []string{"NUMA", "X86_64_ACPI_NUMA"}, Feature, "a --topology with several NUMA nodes boots as one node"},
	{"cpusets", []string{"CPUSETS"}, Feature, "cpuset scenarios cannot confine workers (isolation checks cannot run)"},
	{"sched_ext cgroups", []string{"EXT_GROUP_SCHED"}, Feature, "sched_ext cgroup callbacks never run: cgroup-aware schedulers (scx_flatcg) see no cgroups"},
	{"zstd initramfs", []string{"RD_ZSTD"}, Feature, "ktstr-mkinitramfs --compress zstd blobs are not unpacked (the default, uncompressed, still works)"},
	{"KVM guest", []string{"HYPERVISOR_GUEST", "KVM_GUEST"}, Feature, "no kvm-clock (the default command line asks for it): guest time is less stable and stall timing less reliable"},
}

// Result is one item's verdict.
type Result struct {
	Item    Item     `json:"-"`
	Name    string   `json:"name"`
	Need    string   `json:"need"`
	OK      bool     `json:"ok"`
	Missing []string `json:"missing,omitempty"` // CONFIG_X is not set
	Modules []string `json:"modules,omitempty"` // CONFIG_X=m
	Cost    string   `json:"cost,omitempty"`
}

// Report is a configuration judged against Items.
type Report struct {
	Source  string   `json:"source"`
	Results []Result `json:"items"`
	// Usable: every Boot item and (unless judged for baselines only)
	// every SchedExt item is built in.
	Usable bool `json:"usable"`
	// Baseline: every Boot item is built in (EEVDF baselines can run).
	Baseline bool `json:"baseline_usable"`
}

// Check judges cfg. With baselineOnly, SchedExt items do not make the
// kernel unusable.
func Check(cfg Config, source string, baselineOnly bool) Report {
	r := Report{Source: source, Usable: true, Baseline: true}
	for _, it := range items {
		res := Result{Item: it, Name: it.Name, Need: it.Need.String(), OK: true}
		for _, s := range it.Syms {
			switch cfg.Get(s) {
			case "y":
			case "m":
				res.Modules = append(res.Modules, "CONFIG_"+s)
				res.OK = false
			default:
				res.Missing = append(res.Missing, "CONFIG_"+s)
				res.OK = false
			}
		}
		if !res.OK {
			res.Cost = it.Cost
			switch it.Need {
			case Boot:
				r.Usable, r.Baseline = false, false
			case SchedExt:
				if !baselineOnly {
					r.Usable = false
				}
			}
		}
		r.Results = append(r.Results, res)
	}
	return r
}

// Lacking lists the items that fail with the given need, as "name (no
// CONFIG_X, CONFIG_Y=m)".
func (r Report) Lacking(need Need) []string {
	var out []string
	for _, res := range r.Results {
		if res.OK || res.Item.Need != need {
			continue
		}
		why := append([]string(nil), res.Missing...)
		for _, m := range res.Modules {
			why = append(why, m+"=m")
		}
		out = append(out, res.Name+" ("+strings.Join(why, ", ")+")")
	}
	return out
}

// Print writes one line per item and a verdict line.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "config: %s\n", r.Source)
	for _, res := range r.Results {
		if res.OK {
			fmt.Fprintf(w, "ok       %-34s CONFIG_%s=y\n", res.Name, strings.Join(res.Item.Syms, "=y CONFIG_"))
			continue
		}
		var why []string
		if len(res.Missing) > 0 {
			why = append(why, "no "+strings.Join(res.Missing, ", no "))
		}
		if len(res.Modules) > 0 {
			why = append(why, strings.Join(res.Modules, "=m, ")+"=m (a module; ktstr guests load none)")
		}
		tag := "MISSING"
		if res.Item.Need == Feature {
			tag = "missing"
		}
		fmt.Fprintf(w, "%-8s %-34s %s: %s\n", tag, res.Name, strings.Join(why, "; "), res.Cost)
	}
	switch {
	case r.Usable:
		fmt.Fprintln(w, "usable: this kernel has what ktstr needs")
	case r.Baseline:
		fmt.Fprintln(w, "unusable for sched_ext schedulers: only EEVDF baselines can run (ktstr-kernel check --baseline accepts it)")
	default:
		fmt.Fprintln(w, "unusable: guests cannot boot to a verdict (MISSING items above); build one with ktstr-kernel build SRC")
	}
}
