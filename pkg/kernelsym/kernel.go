package kernelsym

import (
	"bytes"
	"debug/elf"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf/btf"
)

// x86_64 link-time constants.
const (
	// StartKernelMap is __START_KERNEL_map: kernel image virtual
	// addresses are their physical address plus this (before KASLR).
	StartKernelMap = 0xffffffff80000000
	// DefaultPhysicalAlign is CONFIG_PHYSICAL_ALIGN's default.
	DefaultPhysicalAlign = 0x200000
	// DefaultHZ is assumed when the kernel's configuration is unknown.
	DefaultHZ = 250
	maxBanner = 512
)

// Kernel is everything known about one vmlinux build.
type Kernel struct {
	Path          string
	Symbols       Symbols
	Banner        []byte // linux_banner including its terminating NUL
	Config        map[string]string
	HZ            int
	PhysicalAlign uint64
	Layout        *Layout
}

// Load reads a vmlinux: its symbols (or those of systemMap when not
// empty, for a vmlinux without a symbol table), linux_banner, the embedded
// configuration, and the BTF layout.
func Load(vmlinux, systemMap string) (*Kernel, error) {
	f, err := elf.Open(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("open vmlinux: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("vmlinux %s is for %v; only x86_64 guests are supported", vmlinux, f.Machine)
	}
	k := &Kernel{Path: vmlinux}
	if systemMap != "" {
		k.Symbols, err = readSystemMap(systemMap)
	} else {
		k.Symbols, err = elfSymbols(f)
	}
	if err != nil {
		return nil, fmt.Errorf("symbols of %s: %w (pass a System.map for a stripped vmlinux)", vmlinux, err)
	}
	for _, n := range Required {
		if _, ok := k.Symbols[n]; !ok {
			return nil, fmt.Errorf("kernel symbol %s not found in %s", n, vmlinux)
		}
	}
	b, err := elfBytes(f, k.Symbols["linux_banner"], maxBanner)
	if err != nil {
		return nil, fmt.Errorf("linux_banner in %s: %w", vmlinux, err)
	}
	i := bytes.IndexByte(b, 0)
	if i < 16 {
		return nil, fmt.Errorf("linux_banner in %s is not a NUL-terminated string", vmlinux)
	}
	k.Banner = b[:i+1]
	k.HZ, k.PhysicalAlign = DefaultHZ, DefaultPhysicalAlign
	if s, ok := k.Symbols["kernel_config_data"]; ok {
		if e, ok := k.Symbols["kernel_config_data_end"]; ok && e > s && e-s < 4<<20 {
			if blob, err := elfBytes(f, s, e-s); err == nil {
				if cfg, err := ParseIKConfig(blob); err == nil {
					k.Config = cfg
				}
			}
		}
	}
	k.applyConfig()
	if f.Section(".BTF") == nil {
		return nil, fmt.Errorf("vmlinux %s has no .BTF section (build with CONFIG_DEBUG_INFO_BTF=y)", vmlinux)
	}
	spec, err := btf.LoadSpec(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("BTF of %s: %w", vmlinux, err)
	}
	if k.Layout, err = LoadLayout(spec); err != nil {
		return nil, fmt.Errorf("BTF of %s: %w", vmlinux, err)
	}
	return k, nil
}

func (k *Kernel) applyConfig() {
	if v, err := strconv.Atoi(k.Config["CONFIG_HZ"]); err == nil && v > 0 && v <= 100000 {
		k.HZ = v
	}
	if v, err := strconv.ParseUint(k.Config["CONFIG_PHYSICAL_ALIGN"], 0, 64); err == nil && v >= 0x1000 && v&(v-1) == 0 {
		k.PhysicalAlign = v
	}
}

// HasSchedExt reports whether the kernel was built with sched_ext and the
// sampler can read its state.
func (k *Kernel) HasSchedExt() bool {
	_, ok := k.Symbols["scx_ops_enable_state_var"]
	return ok && k.Layout.RqScxNrRunning.OK()
}
