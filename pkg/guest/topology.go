package guest

import (
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/scenario"
)

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// ReadTopology reads the guest's CPU topology from a sysfs tree rooted at
// sys (normally "/sys"): online CPUs, last-level cache groups (the highest
// cache level's shared_cpu_list; the package when there is no cache info),
// and NUMA nodes (one node holding every CPU when there is no node dir).
func ReadTopology(sys string) (*scenario.Topology, error) {
	cpuDir := filepath.Join(sys, "devices/system/cpu")
	s, err := readTrim(filepath.Join(cpuDir, "online"))
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	online, err := cpulist.Parse(s)
	if err != nil || len(online) == 0 {
		return nil, fmt.Errorf("parse online CPUs %q: %v", s, err)
	}
	t := &scenario.Topology{Online: online}
	groups := map[string][]int{}
	for _, c := range online {
		dir := filepath.Join(cpuDir, "cpu"+strconv.Itoa(c))
		key := ""
		best := -1
		idx, _ := filepath.Glob(filepath.Join(dir, "cache/index*"))
		for _, d := range idx {
			lv, err := readTrim(filepath.Join(d, "level"))
			if err != nil {
				continue
			}
			l, _ := strconv.Atoi(lv)
			if typ, _ := readTrim(filepath.Join(d, "type")); typ == "Instruction" {
				continue
			}
			if sh, err := readTrim(filepath.Join(d, "shared_cpu_list")); err == nil && l > best {
				best, key = l, sh
			}
		}
		if key == "" {
			key, _ = readTrim(filepath.Join(dir, "topology/package_cpus_list"))
		}
		if key == "" {
			key = "all"
		}
		groups[key] = append(groups[key], c)
	}
	for _, g := range groups {
		t.LLCs = append(t.LLCs, g)
	}
	slices.SortFunc(t.LLCs, func(a, b []int) int { return a[0] - b[0] })
	nodes, _ := filepath.Glob(filepath.Join(sys, "devices/system/node/node[0-9]*"))
	slices.SortFunc(nodes, func(a, b string) int {
		x, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(a), "node"))
		y, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(b), "node"))
		return x - y
	})
	for _, n := range nodes {
		s, err := readTrim(filepath.Join(n, "cpulist"))
		if err != nil {
			continue
		}
		if l, err := cpulist.Parse(s); err == nil && len(l) > 0 {
			t.Nodes = append(t.Nodes, l)
		}
	}
	if len(t.Nodes) == 0 {
		t.Nodes = [][]int{slices.Clone(online)}
	}
	return t, nil
}

// FindPort looks for the virtio port called name under a sysfs tree rooted
// at sys and returns its device name (vportNpM) and "MAJ:MIN" numbers.
func FindPort(sys, name string) (dev, majmin string, err error) {
	dirs, _ := filepath.Glob(filepath.Join(sys, "class/virtio-ports/*"))
	slices.Sort(dirs)
	var seen []string
	for _, d := range dirs {
		n, err := readTrim(filepath.Join(d, "name"))
		if err != nil {
			continue
		}
		seen = append(seen, filepath.Base(d)+"="+strconv.Quote(n))
		if n == name {
			mm, _ := readTrim(filepath.Join(d, "dev"))
			return filepath.Base(d), mm, nil
		}
	}
	return "", "", fmt.Errorf("no virtio port named %q (ports: %s): wire one with -device virtserialport,name=%s", name, strings.Join(seen, " "), name)
}
