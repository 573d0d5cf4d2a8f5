// Package fakesys writes fake sysfs CPU topology trees for tests of
// hosttopo and its users (ktstr-hostlock --sysfs-root). It owns nothing
// else and imports pkg/cpulist and the standard library only.
package fakesys

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
)

// Spec describes a symmetric host. CPUs are numbered the way x86 Linux
// numbers them: the first thread of every core first (node by node, LLC by
// LLC), then the second thread of every core, and so on, so an LLC's CPU
// list is not contiguous when Threads > 1.
type Spec struct {
	Nodes   int // NUMA nodes (0 means no node directory at all)
	LLCs    int // LLCs per node (at least 1)
	Cores   int // cores per LLC (at least 1)
	Threads int // SMT threads per core (at least 1)
	NoL3    bool
}

// Layout reports, for a Spec, the CPUs of each LLC and of each node.
type Layout struct {
	LLCCPUs  [][]int
	NodeCPUs [][]int
	NCPUs    int
}

// Write creates the tree under root (a sysfs mount point stand-in) and
// returns its layout.
func Write(root string, s Spec) (Layout, error) {
	nodes := max(s.Nodes, 1)
	llcs, cores, threads := max(s.LLCs, 1), max(s.Cores, 1), max(s.Threads, 1)
	totalCores := nodes * llcs * cores
	lay := Layout{NCPUs: totalCores * threads, LLCCPUs: make([][]int, nodes*llcs), NodeCPUs: make([][]int, nodes)}
	cpu := func(core, thread int) int { return thread*totalCores + core }
	cpuDir := filepath.Join(root, "devices/system/cpu")
	w := func(path, data string) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(data+"\n"), 0o644)
	}
	for n := 0; n < nodes; n++ {
		for l := 0; l < llcs; l++ {
			llc := n*llcs + l
			var llcCPUs []int
			for k := 0; k < cores; k++ {
				for th := 0; th < threads; th++ {
					llcCPUs = append(llcCPUs, cpu(llc*cores+k, th))
				}
			}
			lay.LLCCPUs[llc] = cpulist.Normalize(llcCPUs)
			lay.NodeCPUs[n] = cpulist.Normalize(append(lay.NodeCPUs[n], llcCPUs...))
			for k := 0; k < cores; k++ {
				core := llc*cores + k
				var sib []int
				for th := 0; th < threads; th++ {
					sib = append(sib, cpu(core, th))
				}
				for _, c := range sib {
					d := filepath.Join(cpuDir, "cpu"+strconv.Itoa(c))
					files := map[string]string{
						"topology/core_id":              strconv.Itoa(k),
						"topology/physical_package_id":  strconv.Itoa(n),
						"topology/thread_siblings_list": cpulist.Format(sib),
						"cache/index0/level":            "1",
						"cache/index0/type":             "Data",
						"cache/index0/shared_cpu_list":  cpulist.Format(sib),
						"cache/index1/level":            "1",
						"cache/index1/type":             "Instruction",
						"cache/index1/shared_cpu_list":  cpulist.Format(sib),
						"cache/index2/level":            "2",
						"cache/index2/type":             "Unified",
						"cache/index2/shared_cpu_list":  cpulist.Format(sib),
						"cache/index2/id":               strconv.Itoa(core),
					}
					if !s.NoL3 {
						files["cache/index3/level"] = "3"
						files["cache/index3/type"] = "Unified"
						files["cache/index3/shared_cpu_list"] = cpulist.Format(llcCPUs)
						files["cache/index3/id"] = strconv.Itoa(100 + llc)
					}
					for p, v := range files {
						if err := w(filepath.Join(d, p), v); err != nil {
							return lay, err
						}
					}
				}
			}
		}
		if s.Nodes > 0 {
			if err := w(filepath.Join(root, "devices/system/node", fmt.Sprintf("node%d", n), "cpulist"),
				cpulist.Format(lay.NodeCPUs[n])); err != nil {
				return lay, err
			}
		}
	}
	all := make([]int, lay.NCPUs)
	for i := range all {
		all[i] = i
	}
	return lay, w(filepath.Join(cpuDir, "online"), cpulist.Format(all))
}
