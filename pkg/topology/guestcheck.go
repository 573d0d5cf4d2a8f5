package topology

import (
	"bufio"
	"fmt"
	"github.com/ktstr-go/ktstr/pkg/cpulist"
	"math/big"
	"strconv"
	"strings"
)

// GuestProbeScript is a busybox sh fragment that prints, one "KTOPO" line
// each, what a Linux guest derived about its topology: per CPU the package,
// core, SMT siblings and L3 sharing from sysfs; per NUMA node its CPUs and
// distances; and per CPU the span of each scheduling domain from
// /proc/schedstat (kernels without CONFIG_SCHED_DEBUG have no other view
// of the domains). CheckGuest compares that output with the topology.
const GuestProbeScript = `
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  n=${c##*/cpu}; t=$c/topology
  l3=none; [ -r $c/cache/index3/shared_cpu_list ] && l3=$(cat $c/cache/index3/shared_cpu_list)
  echo "KTOPO cpu $n pkg=$(cat $t/physical_package_id) core=$(cat $t/core_id) smt=$(cat $t/thread_siblings_list) l3=$l3"
done
for d in /sys/devices/system/node/node[0-9]*; do
  echo "KTOPO node ${d##*/node} cpus=$(cat $d/cpulist) distance=$(cat $d/distance | tr ' ' ',')"
done
while read -r a b rest; do
  case $a in cpu[0-9]*) c=${a#cpu};; domain[0-9]*) echo "KTOPO sd $c ${a#domain} $b";; esac
done < /proc/schedstat
echo "KTOPO end"
`

// GuestView is what GuestProbeScript reported.
type GuestView struct {
	CPUs  map[int]map[string]string // cpu -> pkg, core, smt, l3
	Nodes map[int]map[string]string // node -> cpus, distance
	// Domains[cpu] lists the domain spans from the lowest level up.
	Domains map[int][]*big.Int
	Ended   bool
}

// ParseGuestProbe reads GuestProbeScript's output out of a console log
// (other lines are ignored).
func ParseGuestProbe(log string) (*GuestView, error) {
	v := &GuestView{CPUs: map[int]map[string]string{}, Nodes: map[int]map[string]string{}, Domains: map[int][]*big.Int{}}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimRight(sc.Text(), "\r"))
		i := strings.Index(line, "KTOPO ")
		if i < 0 {
			continue
		}
		f := strings.Fields(line[i+len("KTOPO "):])
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "end":
			v.Ended = true
		case "cpu", "node":
			if len(f) < 2 {
				return nil, fmt.Errorf("short probe line %q", line)
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 || n >= MaxCPUs {
				return nil, fmt.Errorf("bad number in probe line %q", line)
			}
			kv := map[string]string{}
			for _, p := range f[2:] {
				k, val, _ := strings.Cut(p, "=")
				kv[k] = val
			}
			if f[0] == "cpu" {
				v.CPUs[n] = kv
			} else {
				v.Nodes[n] = kv
			}
		case "sd":
			if len(f) != 4 {
				return nil, fmt.Errorf("bad domain line %q", line)
			}
			c, err1 := strconv.Atoi(f[1])
			lvl, err2 := strconv.Atoi(f[2])
			mask, ok := new(big.Int).SetString(strings.ReplaceAll(f[3], ",", ""), 16)
			if err1 != nil || err2 != nil || !ok || c < 0 || c >= MaxCPUs || lvl != len(v.Domains[c]) {
				return nil, fmt.Errorf("bad domain line %q", line)
			}
			v.Domains[c] = append(v.Domains[c], mask)
		}
	}
	return v, sc.Err()
}

func (t *Topology) group(same func(a, b CPU) bool, c CPU) []int {
	var out []int
	for _, o := range t.CPUs {
		if same(c, o) {
			out = append(out, o.Index)
		}
	}
	return out
}

func sameCore(a, b CPU) bool { return a.LLC == b.LLC && a.Core == b.Core }
func sameLLC(a, b CPU) bool  { return a.LLC == b.LLC }
func sameNode(a, b CPU) bool { return a.Node == b.Node }
func anyCPU(a, b CPU) bool   { return true }

func mask(cpus []int) *big.Int {
	m := new(big.Int)
	for _, c := range cpus {
		m.SetBit(m, c, 1)
	}
	return m
}

// ExpectedDomains is the scheduling-domain spans Linux should build for
// CPU c: SMT siblings, LLC, NUMA node (= package), whole machine, with the
// levels whose span equals the one below left out, as the kernel
// degenerates them.
func (t *Topology) ExpectedDomains(c CPU) []*big.Int {
	var out []*big.Int
	for _, same := range []func(a, b CPU) bool{sameCore, sameLLC, sameNode, anyCPU} {
		m := mask(t.group(same, c))
		if m.BitLen() == 0 || len(t.group(same, c)) == 1 {
			continue
		}
		if len(out) > 0 && out[len(out)-1].Cmp(m) == 0 {
			continue
		}
		out = append(out, m)
	}
	return out
}

// CheckGuest compares what the guest reported with the topology and
// returns every mismatch (none means the guest sees exactly this shape).
func (t *Topology) CheckGuest(v *GuestView) []string {
	var bad []string
	errf := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	if !v.Ended {
		errf("probe output incomplete (no end line)")
	}
	if len(v.CPUs) != len(t.CPUs) {
		errf("guest has %d CPUs, want %d", len(v.CPUs), len(t.CPUs))
	}
	pkgOfNode := map[int]string{}
	nodeOfPkg := map[string]int{}
	for _, c := range t.CPUs {
		g, ok := v.CPUs[c.Index]
		if !ok {
			errf("cpu%d missing", c.Index)
			continue
		}
		if want := cpulist.Format(t.group(sameCore, c)); g["smt"] != want {
			errf("cpu%d thread_siblings_list %q, want %q", c.Index, g["smt"], want)
		}
		if want := cpulist.Format(t.group(sameLLC, c)); g["l3"] != want {
			errf("cpu%d cache/index3/shared_cpu_list %q, want %q", c.Index, g["l3"], want)
		}
		// Package IDs: one per node, distinct across nodes.
		if p, seen := pkgOfNode[c.Node]; seen && p != g["pkg"] {
			errf("cpu%d in package %s, but node %d's other CPUs are in package %s", c.Index, g["pkg"], c.Node, p)
		}
		if n, seen := nodeOfPkg[g["pkg"]]; seen && n != c.Node {
			errf("cpu%d (node %d) shares package %s with node %d", c.Index, c.Node, g["pkg"], n)
		}
		pkgOfNode[c.Node], nodeOfPkg[g["pkg"]] = g["pkg"], c.Node
		want := t.ExpectedDomains(c)
		got := v.Domains[c.Index]
		if len(got) != len(want) {
			errf("cpu%d has %d scheduling domains %s, want %d %s", c.Index, len(got), masks(got), len(want), masks(want))
			continue
		}
		for i := range want {
			if got[i].Cmp(want[i]) != 0 {
				errf("cpu%d domain%d spans %x, want %x", c.Index, i, got[i], want[i])
			}
		}
	}
	nodes := len(v.Nodes)
	if nodes != t.Nodes {
		errf("guest has %d NUMA nodes, want %d", nodes, t.Nodes)
	}
	for n := range t.Nodes {
		g, ok := v.Nodes[n]
		if !ok {
			errf("node%d missing", n)
			continue
		}
		if want := cpulist.Format(t.NodeCPUs(n)); g["cpus"] != want {
			errf("node%d cpulist %q, want %q", n, g["cpus"], want)
		}
		var dist []string
		for m := range t.Nodes {
			d := "20"
			if m == n {
				d = "10"
			}
			dist = append(dist, d)
		}
		if want := strings.Join(dist, ","); g["distance"] != want {
			errf("node%d distance %q, want %q", n, g["distance"], want)
		}
	}
	return bad
}

func masks(ms []*big.Int) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%x", m))
	}
	return "[" + strings.Join(s, " ") + "]"
}
