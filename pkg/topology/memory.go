package topology

import (
	"fmt"
	"sort"
)

// Range is a guest-physical RAM range.
type Range struct {
	Base, Size uint64
}

// End is one past the range's last byte.
func (r Range) End() uint64 { return r.Base + r.Size }

// NodeRange is a guest-physical RAM range that belongs to a NUMA node.
type NodeRange struct {
	Range
	Node int
}

// nodeAlign keeps node boundaries on 2 MiB so each node's memory can be
// backed by its own huge pages.
const nodeAlign = 2 << 20

// SplitMemory divides total bytes of guest RAM over the nodes: equal shares
// rounded down to 2 MiB, the last node taking the remainder.
func (t *Topology) SplitMemory(total uint64) ([]uint64, error) {
	n := uint64(t.Nodes)
	share := total / n / nodeAlign * nodeAlign
	if share == 0 {
		return nil, fmt.Errorf("%d MiB of memory is too little for %d NUMA nodes: give each at least 2 MiB", total>>20, n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = share
	}
	out[n-1] = total - share*(n-1)
	return out, nil
}

// AssignMemory walks the guest's RAM ranges in address order and hands
// them to nodes in order, each node taking its share from SplitMemory of
// the ranges' total. A range that straddles a node boundary is split there,
// on a 2 MiB-aligned address. The result is what the e820 map and the SRAT
// describe.
func (t *Topology) AssignMemory(ram []Range) ([]NodeRange, error) {
	rs := append([]Range(nil), ram...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Base < rs[j].Base })
	var total uint64
	for i, r := range rs {
		if r.Size == 0 {
			continue
		}
		if r.End() < r.Base {
			return nil, fmt.Errorf("RAM range %#x+%#x wraps around", r.Base, r.Size)
		}
		if i > 0 && rs[i-1].End() > r.Base {
			return nil, fmt.Errorf("RAM ranges %#x+%#x and %#x+%#x overlap", rs[i-1].Base, rs[i-1].Size, r.Base, r.Size)
		}
		total += r.Size
	}
	shares, err := t.SplitMemory(total)
	if err != nil {
		return nil, err
	}
	var out []NodeRange
	node := 0
	left := shares[0]
	for _, r := range rs {
		for r.Size > 0 {
			for left == 0 && node < len(shares)-1 {
				node++
				left = shares[node]
			}
			take := min(r.Size, left)
			if node == len(shares)-1 {
				take = r.Size
			} else if take < r.Size {
				// Cut on a 2 MiB boundary; the node falls short by
				// less than 2 MiB and the next one makes it up.
				if cut := (r.Base + take) &^ (nodeAlign - 1); cut > r.Base {
					take = cut - r.Base
				}
				left = take // this node ends here
			}
			out = append(out, NodeRange{Range: Range{Base: r.Base, Size: take}, Node: node})
			r.Base += take
			r.Size -= take
			left -= min(left, take)
		}
	}
	return out, nil
}
