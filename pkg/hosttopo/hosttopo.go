package hosttopo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where sysfs is mounted on a real host.
const DefaultRoot = "/sys"

// CPU is one online logical CPU.
type CPU struct {
	ID       int   `json:"id"`
	Core     int   `json:"core"`     // topology/core_id (-1 when unknown)
	Siblings []int `json:"siblings"` // SMT siblings including itself
	LLC      int   `json:"llc"`      // index into Topology.LLCs
	Node     int   `json:"node"`     // NUMA node id
}

// LLC is one last-level cache and the online CPUs sharing it.
type LLC struct {
	Index int   `json:"index"` // position in Topology.LLCs
	Level int   `json:"level"` // cache level (3 for an L3); 0 when sysfs has no cache information
	ID    int   `json:"id"`    // sysfs cache id, -1 when absent
	Node  int   `json:"node"`  // majority NUMA node of its CPUs
	CPUs  []int `json:"cpus"`  // online CPUs, ascending
}

// Node is one NUMA node that has online CPUs.
type Node struct {
	ID   int   `json:"id"`
	CPUs []int `json:"cpus"` // online CPUs, ascending
	LLCs []int `json:"llcs"` // LLC indices whose majority node this is
}

// Topology is a snapshot of the host's CPU topology.
type Topology struct {
	CPUs    []CPU  `json:"cpus"`    // online CPUs, ascending by ID
	LLCs    []LLC  `json:"llcs"`    // ascending by lowest CPU
	Nodes   []Node `json:"nodes"`   // ascending by ID, only nodes with online CPUs
	Allowed []int  `json:"allowed"` // online CPUs the caller may run on, ascending
}

// Read reads the topology under root, the sysfs mount point (DefaultRoot on
// a real host).
func Read(root string) (*Topology, error) {
	if root == "" {
		root = DefaultRoot
	}
	cpuDir := filepath.Join(root, "devices/system/cpu")
	online, err := readList(filepath.Join(cpuDir, "online"))
	if err != nil {
		return nil, fmt.Errorf("host topology: %w", err)
	}
	if len(online) == 0 {
		return nil, fmt.Errorf("host topology: %s lists no online CPUs", filepath.Join(cpuDir, "online"))
	}
	nodeOf, err := readNodes(filepath.Join(root, "devices/system/node"))
	if err != nil {
		return nil, fmt.Errorf("host topology: %w", err)
	}
	t := &Topology{}
	type llcKey struct {
		level int
		cpus  string
	}
	llcOf := map[int]llcKey{}
	llcID := map[llcKey]int{}
	for _, c := range online {
		base := filepath.Join(cpuDir, "cpu"+strconv.Itoa(c))
		cpu := CPU{ID: c, Core: readIntOr(filepath.Join(base, "topology/core_id"), -1)}
		cpu.Siblings, _ = readList(filepath.Join(base, "topology/thread_siblings_list"))
		if len(cpu.Siblings) == 0 {
			cpu.Siblings = []int{c}
		}
		if n, ok := nodeOf[c]; ok {
			cpu.Node = n
		}
		// CPUs listed in an LLC already read share it: skip their cache
		// directories (one read of index*/ per LLC, not per CPU).
		k, known := llcOf[c]
		if !known {
			level, shared, id, err := lastLevelCache(filepath.Join(base, "cache"))
			if err != nil {
				return nil, fmt.Errorf("host topology: cpu%d: %w", c, err)
			}
			k = llcKey{level, cpulist.Format(shared)}
			if _, ok := llcID[k]; !ok {
				llcID[k] = id
			}
			for _, o := range shared {
				if _, ok := llcOf[o]; !ok && o != c {
					llcOf[o] = k
				}
			}
			llcOf[c] = k
		}
		t.CPUs = append(t.CPUs, cpu)
	}
	// Group CPUs by LLC, number LLCs by their lowest online CPU.
	members := map[llcKey][]int{}
	var order []llcKey
	for _, c := range online {
		k := llcOf[c]
		if _, ok := members[k]; !ok {
			order = append(order, k)
		}
		members[k] = append(members[k], c)
	}
	index := map[llcKey]int{}
	for i, k := range order { // online is ascending, so order is by lowest CPU
		index[k] = i
		l := LLC{Index: i, Level: k.level, ID: llcID[k], CPUs: members[k]}
		l.Node = majorityNode(l.CPUs, nodeOf)
		t.LLCs = append(t.LLCs, l)
	}
	nodes := map[int]*Node{}
	for i := range t.CPUs {
		c := &t.CPUs[i]
		c.LLC = index[llcOf[c.ID]]
		n := nodes[c.Node]
		if n == nil {
			n = &Node{ID: c.Node}
			nodes[c.Node] = n
		}
		n.CPUs = append(n.CPUs, c.ID)
	}
	for _, l := range t.LLCs {
		if n := nodes[l.Node]; n != nil {
			n.LLCs = append(n.LLCs, l.Index)
		}
	}
	for _, n := range nodes {
		t.Nodes = append(t.Nodes, *n)
	}
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].ID < t.Nodes[j].ID })

	t.Allowed = online
	if filepath.Clean(root) == DefaultRoot {
		allowed, err := affinity()
		if err != nil {
			return nil, err
		}
		t.Allowed = intersect(online, allowed)
		if len(t.Allowed) == 0 {
			return nil, fmt.Errorf("host topology: this process may run on no online CPU (affinity %s, online %s)",
				cpulist.Format(allowed), cpulist.Format(online))
		}
	}
	return t, nil
}

// lastLevelCache returns the highest-level data or unified cache of one CPU:
// its level, the CPUs sharing it and its sysfs id (-1 when absent). A CPU
// without cache directories yields level 0 and no CPUs.
func lastLevelCache(dir string) (level int, shared []int, id int, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, -1, nil
	}
	if err != nil {
		return 0, nil, -1, err
	}
	best := ""
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "index") {
			continue
		}
		d := filepath.Join(dir, e.Name())
		lv := readIntOr(filepath.Join(d, "level"), -1)
		if lv <= level {
			continue
		}
		if typ, _ := readFile(filepath.Join(d, "type")); strings.TrimSpace(typ) == "Instruction" {
			continue
		}
		level, best = lv, d
	}
	if best == "" {
		return 0, nil, -1, nil
	}
	shared, err = readList(filepath.Join(best, "shared_cpu_list"))
	if err != nil {
		return 0, nil, -1, err
	}
	if !slices.Contains(shared, cpuOf(dir)) {
		shared = append(shared, cpuOf(dir))
	}
	return level, cpulist.Normalize(shared), readIntOr(filepath.Join(best, "id"), -1), nil
}

// cpuOf returns N from ".../cpuN/cache".
func cpuOf(cacheDir string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(cacheDir)), "cpu"))
	return n
}

// readFile reads a small sysfs attribute with three system calls (open,
// read, close): ktstr-hostlock reads dozens per run and its start-up time
// is measured against flock(1).
func readFile(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return "", &os.PathError{Op: "read", Path: path, Err: err}
	}
	return string(buf[:n]), nil
}

// readNodes maps CPU -> NUMA node from nodeN/cpulist. A missing node
// directory (a kernel without NUMA) maps nothing: every CPU is on node 0.
func readNodes(dir string) (map[int]int, error) {
	out := map[int]int{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "node")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			continue
		}
		cpus, err := readList(filepath.Join(dir, e.Name(), "cpulist"))
		if err != nil {
			return nil, err
		}
		for _, c := range cpus {
			out[c] = n
		}
	}
	return out, nil
}

func majorityNode(cpus []int, nodeOf map[int]int) int {
	count := map[int]int{}
	best, bestN := 0, -1
	for _, c := range cpus {
		count[nodeOf[c]]++
	}
	for n, k := range count {
		if k > bestN || k == bestN && n < best {
			best, bestN = n, k
		}
	}
	return best
}

func readList(path string) ([]int, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	l, err := cpulist.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func readIntOr(path string, def int) int {
	b, err := readFile(path)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(b))
	if err != nil {
		return def
	}
	return n
}

func affinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("host topology: sched_getaffinity: %w", err)
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func intersect(a, b []int) []int {
	in := map[int]bool{}
	for _, c := range b {
		in[c] = true
	}
	var out []int
	for _, c := range a {
		if in[c] {
			out = append(out, c)
		}
	}
	return out
}

// CPU returns the online CPU with the given id.
func (t *Topology) CPU(id int) (CPU, bool) {
	i := sort.Search(len(t.CPUs), func(i int) bool { return t.CPUs[i].ID >= id })
	if i < len(t.CPUs) && t.CPUs[i].ID == id {
		return t.CPUs[i], true
	}
	return CPU{}, false
}

// AllowedIn returns the CPUs of LLC index llc the caller may run on.
func (t *Topology) AllowedIn(llc int) []int {
	if llc < 0 || llc >= len(t.LLCs) {
		return nil
	}
	return intersect(t.LLCs[llc].CPUs, t.Allowed)
}

// String summarises the topology on one line, e.g.
// "8 CPUs, 4 LLCs (L3), 2 NUMA nodes, SMT 2, allowed 0-7".
func (t *Topology) String() string {
	lv := 0
	if len(t.LLCs) > 0 {
		lv = t.LLCs[0].Level
	}
	smt := 1
	for _, c := range t.CPUs {
		if len(c.Siblings) > smt {
			smt = len(c.Siblings)
		}
	}
	return fmt.Sprintf("%d CPUs, %d LLCs (L%d), %d NUMA nodes, SMT %d, allowed %s",
		len(t.CPUs), len(t.LLCs), lv, len(t.Nodes), smt, cpulist.Format(t.Allowed))
}

// LLCsFor is the number of whole LLCs a reservation of LLCs must take so
// that cpus of their CPUs the caller may run on are in it, whichever of
// the LLCs with allowed CPUs it gets: the fewest K such that the K
// smallest of them (by allowed CPUs) hold cpus. On a host whose LLCs are
// all the same size that is ceil(cpus / CPUs per LLC). It fails, saying
// what the host has, when even all of them together hold fewer than cpus.
func (t *Topology) LLCsFor(cpus int) (int, error) {
	if cpus < 1 {
		return 0, fmt.Errorf("LLCs for %d CPUs: the count must be at least 1", cpus)
	}
	var sizes []int
	for _, l := range t.LLCs {
		if n := len(t.AllowedIn(l.Index)); n > 0 {
			sizes = append(sizes, n)
		}
	}
	sort.Ints(sizes)
	sum := 0
	for i, n := range sizes {
		sum += n
		if sum >= cpus {
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%d CPUs do not fit in this host's LLCs: its %d LLC(s) hold %d CPU(s) this process may use (%s)",
		cpus, len(sizes), sum, cpulist.Format(t.Allowed))
}
