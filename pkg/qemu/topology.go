package qemu

import (
	"fmt"
	"strconv"

	"github.com/ktstr-go/ktstr/pkg/topology"
)

// RemoteDistance is the SLIT distance between two NUMA nodes, as
// ktstr-boot's ACPI tables give it (pkg/acpi: 10 local, 20 remote).
const RemoteDistance = 20

// Shape is how a topology maps onto QEMU: the machine type, the -smp and
// -numa arguments, and each node's share of RAM (nil for one node).
type Shape struct {
	Machine   string
	SMP       []string
	NodeSizes []uint64
}

// ShapeOf maps t (pkg/topology owns the shape) onto QEMU for memBytes of
// RAM. One node with one LLC stays on microvm: -smp sockets=1, cores,
// threads. microvm has neither dies nor an SRAT, so several LLCs or nodes
// take the pc machine: one socket per NUMA node (as ktstr-boot: packages
// follow nodes), LLCs as dies inside it (QEMU shares the L3 per die),
// cores per LLC, threads per core; nodes get -numa node (SRAT) with
// their CPUs and RAM and -numa dist (SLIT).
func ShapeOf(t *topology.Topology, memBytes uint64) (Shape, error) {
	s := Shape{Machine: "microvm"}
	smp := fmt.Sprintf("cpus=%d,sockets=%d,cores=%d,threads=%d", len(t.CPUs), t.Nodes, t.CoresPerLLC, t.ThreadsPerCore)
	if t.LLCs > 1 || t.Nodes > 1 {
		s.Machine = "pc"
		smp = fmt.Sprintf("cpus=%d,sockets=%d,dies=%d,cores=%d,threads=%d", len(t.CPUs), t.Nodes, t.LLCsPerNode(), t.CoresPerLLC, t.ThreadsPerCore)
	}
	s.SMP = []string{"-smp", smp}
	if t.Nodes == 1 {
		return s, nil
	}
	sizes, err := t.SplitMemory(memBytes)
	if err != nil {
		return Shape{}, err
	}
	s.NodeSizes = sizes
	for n := 0; n < t.Nodes; n++ {
		cpus := t.NodeCPUs(n)
		if len(cpus) == 0 {
			return Shape{}, fmt.Errorf("topology %s: node %d has no CPUs", t.Shape, n)
		}
		// QEMU numbers CPUs socket by socket, so a node's CPUs are one
		// contiguous range.
		s.SMP = append(s.SMP, "-numa", fmt.Sprintf("node,nodeid=%d,cpus=%d-%d,memdev=node%d", n, cpus[0], cpus[len(cpus)-1], n))
	}
	for a := 0; a < t.Nodes; a++ {
		for b := a + 1; b < t.Nodes; b++ {
			s.SMP = append(s.SMP, "-numa", "dist,src="+strconv.Itoa(a)+",dst="+strconv.Itoa(b)+",val="+strconv.Itoa(RemoteDistance))
		}
	}
	return s, nil
}
