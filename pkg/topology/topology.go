package topology

import (
	"fmt"
	"math/bits"
	"strconv"
)

// Limits on a shape. MaxCPUs matches KVM's default KVM_MAX_VCPUS on x86;
// the VMM still checks KVM_CAP_MAX_VCPUS. MaxNodes matches a kernel built
// with NODES_SHIFT=6.
const (
	MaxCPUs  = 1024
	MaxNodes = 64
	// MaxXAPICID is the largest APIC ID a guest can use in xAPIC mode
	// (0xFF is the broadcast ID); larger IDs need x2APIC.
	MaxXAPICID = 254
)

// Shape is a requested topology. LLCs counts last-level caches in the whole
// machine; they are split evenly over the NUMA nodes.
type Shape struct {
	Nodes          int
	LLCs           int
	CoresPerLLC    int
	ThreadsPerCore int
}

// String returns the NnNlNcNt form, which Parse reads back.
func (s Shape) String() string {
	return fmt.Sprintf("%dn%dl%dc%dt", s.Nodes, s.LLCs, s.CoresPerLLC, s.ThreadsPerCore)
}

// NumCPUs is the number of vCPUs in the shape.
func (s Shape) NumCPUs() int { return s.LLCs * s.CoresPerLLC * s.ThreadsPerCore }

// LLCsPerNode is the number of LLCs in each NUMA node (= package).
func (s Shape) LLCsPerNode() int { return s.LLCs / s.Nodes }

// Validate reports whether the shape can be built.
func (s Shape) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"NUMA nodes", s.Nodes}, {"LLCs", s.LLCs}, {"cores per LLC", s.CoresPerLLC}, {"threads per core", s.ThreadsPerCore}} {
		if f.v < 1 {
			return fmt.Errorf("topology %s: %s must be at least 1", s, f.name)
		}
		if f.v > MaxCPUs {
			return fmt.Errorf("topology %s: %s must be at most %d", s, f.name, MaxCPUs)
		}
	}
	if s.Nodes > MaxNodes {
		return fmt.Errorf("topology %s: at most %d NUMA nodes", s, MaxNodes)
	}
	if s.LLCs%s.Nodes != 0 {
		return fmt.Errorf("topology %s: %d LLCs do not split evenly over %d NUMA nodes", s, s.LLCs, s.Nodes)
	}
	if n := s.NumCPUs(); n > MaxCPUs {
		return fmt.Errorf("topology %s: %d vCPUs, at most %d", s, n, MaxCPUs)
	}
	return nil
}

// Parse reads the NnNlNcNt form, e.g. "2n4l2c1t": 2 NUMA nodes, 4 LLCs in
// total (2 per node), 2 cores per LLC, 1 thread per core. Letters may be
// upper or lower case and must come in the order n, l, c, t.
func Parse(text string) (Shape, error) {
	var vals [4]int
	rest := text
	for i, letter := range []byte("nlct") {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 || j >= len(rest) || rest[j]|0x20 != letter {
			return Shape{}, fmt.Errorf("topology %q: want NnNlNcNt, e.g. 2n4l2c1t (NUMA nodes, LLCs, cores per LLC, threads per core)", text)
		}
		if j > 7 {
			return Shape{}, fmt.Errorf("topology %q: number too large", text)
		}
		v, err := strconv.Atoi(rest[:j])
		if err != nil {
			return Shape{}, fmt.Errorf("topology %q: %w", text, err)
		}
		vals[i] = v
		rest = rest[j+1:]
	}
	if rest != "" {
		return Shape{}, fmt.Errorf("topology %q: unexpected %q after the t field", text, rest)
	}
	s := Shape{Nodes: vals[0], LLCs: vals[1], CoresPerLLC: vals[2], ThreadsPerCore: vals[3]}
	if err := s.Validate(); err != nil {
		return Shape{}, err
	}
	return s, nil
}

// FromCPUs is the shape --cpus N stands for: 1n1lNc1t.
func FromCPUs(n int) (Shape, error) {
	s := Shape{Nodes: 1, LLCs: 1, CoresPerLLC: n, ThreadsPerCore: 1}
	if err := s.Validate(); err != nil {
		return Shape{}, err
	}
	return s, nil
}

// CPU is one vCPU's place in the topology. Index is the vCPU number and the
// guest's CPU number (the MADT lists vCPUs in Index order).
type CPU struct {
	Index     int
	APICID    uint32
	Node      int // NUMA node = package
	LLC       int // global LLC number
	LLCInNode int // LLC number inside its node
	Core      int // core number inside its LLC
	Thread    int // thread number inside its core
}

// CoreInPackage is the core's number inside its package.
func (c CPU) CoreInPackage(t *Topology) int { return c.LLCInNode*t.CoresPerLLC + c.Core }

// Topology is a validated shape with its vCPU layout. Bit widths are the
// APIC ID fields: thread, core (in an LLC), LLC (in a package); the package
// ID sits above PackageShift.
type Topology struct {
	Shape
	ThreadBits, CoreBits, LLCBits uint
	CPUs                          []CPU
}

// orderOf is ceil(log2(n)): the bits needed to number n things.
func orderOf(n int) uint {
	if n <= 1 {
		return 0
	}
	return uint(bits.Len(uint(n - 1)))
}

// FromText is Parse followed by New: the layout of an NnNlNcNt shape.
func FromText(text string) (*Topology, error) {
	s, err := Parse(text)
	if err != nil {
		return nil, err
	}
	return New(s)
}

// New lays out the vCPUs of a shape.
func New(s Shape) (*Topology, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	t := &Topology{
		Shape:      s,
		ThreadBits: orderOf(s.ThreadsPerCore),
		CoreBits:   orderOf(s.CoresPerLLC),
		LLCBits:    orderOf(s.LLCsPerNode()),
	}
	if t.PackageShift()+orderOf(s.Nodes) > 31 {
		return nil, fmt.Errorf("topology %s: APIC IDs need more than 31 bits", s)
	}
	n := s.NumCPUs()
	t.CPUs = make([]CPU, n)
	perLLC := s.CoresPerLLC * s.ThreadsPerCore
	for i := range n {
		c := CPU{
			Index:  i,
			Thread: i % s.ThreadsPerCore,
			Core:   (i / s.ThreadsPerCore) % s.CoresPerLLC,
			LLC:    i / perLLC,
		}
		c.Node = c.LLC / s.LLCsPerNode()
		c.LLCInNode = c.LLC % s.LLCsPerNode()
		c.APICID = uint32(c.Node)<<t.PackageShift() |
			uint32(c.LLCInNode)<<t.LLCShift() |
			uint32(c.Core)<<t.ThreadBits |
			uint32(c.Thread)
		t.CPUs[i] = c
	}
	return t, nil
}

// LLCShift is the APIC ID bit where the LLC field starts: the width of one
// LLC's thread and core fields.
func (t *Topology) LLCShift() uint { return t.ThreadBits + t.CoreBits }

// PackageShift is the APIC ID bit where the package (= NUMA node) field
// starts.
func (t *Topology) PackageShift() uint { return t.ThreadBits + t.CoreBits + t.LLCBits }

// CPUsPerLLC is the number of vCPUs sharing one LLC.
func (t *Topology) CPUsPerLLC() int { return t.CoresPerLLC * t.ThreadsPerCore }

// CPUsPerNode is the number of vCPUs in one NUMA node (= package).
func (t *Topology) CPUsPerNode() int { return t.CPUsPerLLC() * t.LLCsPerNode() }

// MaxAPICID is the largest APIC ID in use.
func (t *Topology) MaxAPICID() uint32 { return t.CPUs[len(t.CPUs)-1].APICID }

// NeedsX2APIC reports whether some APIC ID does not fit xAPIC's 8 bits.
func (t *Topology) NeedsX2APIC() bool { return t.MaxAPICID() > MaxXAPICID }

// NodeCPUs returns the vCPU indices in node n.
func (t *Topology) NodeCPUs(n int) []int {
	var out []int
	for _, c := range t.CPUs {
		if c.Node == n {
			out = append(out, c.Index)
		}
	}
	return out
}
