package monitor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kernelsym"
)

// maxCPUs bounds the CPU count read from the guest (nr_cpu_ids).
const maxCPUs = 8192

// ErrKernelNotFound means linux_banner's bytes are nowhere in guest RAM:
// the kernel has not been decompressed yet, or the vmlinux is not the
// guest's kernel.
var ErrKernelNotFound = errors.New("kernel not found in guest memory")

// Guest is a located kernel in guest RAM: it turns the kernel's link-time
// addresses and runtime pointers into guest-physical reads.
type Guest struct {
	mem *guestmem.Memory
	k   *kernelsym.Kernel

	physDelta  uint64 // load address minus link address (physical)
	physBase   uint64 // the kernel's phys_base: image VA -> PA offset
	pageOffset uint64 // page_offset_base: start of the direct map
	pt         *guestmem.PageTable
	nrCPUs     int
}

// Locate finds the kernel described by k in mem. It looks for
// linux_banner's bytes where the kernel's physical alignment allows the
// image to be (a few hundred compares for a 512 MiB guest). The find is
// verified against the kernel's own page tables (see newGuest).
func Locate(mem *guestmem.Memory, k *kernelsym.Kernel) (*Guest, error) {
	return locate(mem, k, false)
}

// LocateAnywhere is Locate followed, when that fails, by a scan of all of
// guest RAM for a kernel placed without regard to its alignment. The scan
// reads every byte of RAM: call it rarely.
func LocateAnywhere(mem *guestmem.Memory, k *kernelsym.Kernel) (*Guest, error) {
	return locate(mem, k, true)
}

func locate(mem *guestmem.Memory, k *kernelsym.Kernel, anywhere bool) (*Guest, error) {
	banner := k.Banner
	bannerPA := k.Symbols["linux_banner"] - kernelsym.StartKernelMap // link-time physical
	align := k.PhysicalAlign
	var lastErr error
	try := func(pa uint64) (*Guest, bool) {
		g, err := newGuest(mem, k, pa-bannerPA)
		if err != nil {
			lastErr = err
			return nil, false
		}
		return g, true
	}
	for _, r := range mem.Regions() {
		// Aligned candidates: the image moves in steps of the physical
		// alignment, so the banner sits at bannerPA + n*align.
		first := r.GPA
		if rem := (first - bannerPA%align) % align; rem != 0 {
			first += align - rem
		}
		for pa := first; pa-r.GPA < r.Size; pa += align {
			s, err := mem.Slice(pa, uint64(len(banner)))
			if err != nil {
				break
			}
			if bytes.Equal(s, banner) {
				if g, ok := try(pa); ok {
					return g, nil
				}
			}
		}
	}
	// Unaligned fallback (a kernel loaded by a boot loader that ignores
	// the alignment).
	for _, r := range mem.Regions() {
		if !anywhere {
			break
		}
		s, err := mem.Slice(r.GPA, r.Size)
		if err != nil {
			continue
		}
		for off := 0; off < len(s); {
			i := bytes.Index(s[off:], banner)
			if i < 0 {
				break
			}
			if g, ok := try(r.GPA + uint64(off+i)); ok {
				return g, nil
			}
			off += i + 1
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("%w: banner found but the image around it is not this vmlinux's: %v", ErrKernelNotFound, lastErr)
	}
	return nil, ErrKernelNotFound
}

// newGuest checks that the image is at physical delta and reads its
// boot-time globals.
func newGuest(mem *guestmem.Memory, k *kernelsym.Kernel, delta uint64) (*Guest, error) {
	g := &Guest{mem: mem, k: k, physDelta: delta}
	var err error
	if g.physBase, err = g.imageU64("phys_base"); err != nil {
		return nil, err
	}
	// phys_base = physical delta - virtual delta; the virtual KASLR delta
	// must be a multiple of the alignment and below 1 GiB.
	vdelta := delta - g.physBase
	if vdelta%k.PhysicalAlign != 0 || vdelta >= 1<<30 {
		return nil, fmt.Errorf("phys_base %#x gives virtual delta %#x, not an aligned offset below 1 GiB", g.physBase, vdelta)
	}
	if g.pageOffset, err = g.imageU64("page_offset_base"); err != nil {
		return nil, err
	}
	if g.pageOffset>>63 == 0 || g.pageOffset&(1<<30-1) != 0 {
		return nil, fmt.Errorf("page_offset_base %#x is not a kernel direct-map base", g.pageOffset)
	}
	levels := 4
	if a, ok := k.Symbols["__pgtable_l5_enabled"]; ok {
		v, err := mem.U32(g.ImagePA(a))
		if err != nil {
			return nil, err
		}
		if v != 0 {
			levels = 5
		}
	}
	if g.pt, err = guestmem.NewPageTable(mem, g.ImagePA(k.Symbols["init_top_pgt"]), levels); err != nil {
		return nil, err
	}
	// The kernel's own page tables must map linux_banner's runtime
	// address, through the image mapping and the direct map, to where
	// the banner was found. This rejects transient copies of the image
	// (the decompressor's output before it is moved into place) and a
	// kernel too early in boot to have built its page tables.
	bannerPA := g.ImagePA(k.Symbols["linux_banner"])
	for _, va := range []uint64{k.Symbols["linux_banner"] + vdelta, g.pageOffset + bannerPA} {
		pa, _, err := g.pt.Translate(va)
		if err != nil {
			return nil, fmt.Errorf("kernel page tables do not map %#x yet: %w", va, err)
		}
		if pa != bannerPA {
			return nil, fmt.Errorf("kernel page tables map %#x to %#x, not to the banner at %#x", va, pa, bannerPA)
		}
	}
	n, err := mem.U32(g.ImagePA(k.Symbols["nr_cpu_ids"]))
	if err != nil {
		return nil, err
	}
	if n == 0 || n > maxCPUs {
		return nil, fmt.Errorf("nr_cpu_ids %d out of range", n)
	}
	g.nrCPUs = int(n)
	return g, nil
}

func (g *Guest) imageU64(sym string) (uint64, error) {
	a, ok := g.k.Symbols[sym]
	if !ok {
		return 0, fmt.Errorf("kernel symbol %s unknown", sym)
	}
	v, err := g.mem.U64(g.ImagePA(a))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", sym, err)
	}
	return v, nil
}

// ImagePA is the guest-physical address of a kernel image symbol given its
// link-time address.
func (g *Guest) ImagePA(link uint64) uint64 { return link - kernelsym.StartKernelMap + g.physDelta }

// PhysDelta is how far the kernel image was moved in physical memory.
func (g *Guest) PhysDelta() uint64 { return g.physDelta }

// VirtDelta is how far KASLR moved the kernel image's virtual addresses.
func (g *Guest) VirtDelta() uint64 { return g.physDelta - g.physBase }

// PageOffset is the runtime base of the direct map.
func (g *Guest) PageOffset() uint64 { return g.pageOffset }

// Levels is the guest's paging depth.
func (g *Guest) Levels() int { return g.pt.Levels() }

// NrCPUs is nr_cpu_ids as the guest kernel set it.
func (g *Guest) NrCPUs() int { return g.nrCPUs }

// Refresh re-reads the globals that the kernel sets during boot
// (page_offset_base, paging depth, nr_cpu_ids); call it until the guest
// is up, since a kernel found early may not have set them yet.
func (g *Guest) Refresh() error {
	ng, err := newGuest(g.mem, g.k, g.physDelta)
	if err != nil {
		return err
	}
	*g = *ng
	return nil
}

// Phys translates a kernel virtual address: direct map and kernel image
// by arithmetic, anything else (vmalloc, per-CPU chunks outside the direct
// map) by walking the kernel's page tables.
func (g *Guest) Phys(va uint64) (uint64, error) {
	if pa, ok := g.linear(va); ok {
		return pa, nil
	}
	pa, _, err := g.pt.Translate(va)
	return pa, err
}

// Sizes of the linearly mapped ranges: the direct map (64 TiB bounds any
// guest this tool meets; reads are bounds-checked against RAM anyway) and
// the kernel image mapping (KERNEL_IMAGE_SIZE with KASLR, 1 GiB).
const (
	directMapSpan = 1 << 46
	imageSpan     = 1 << 30
)

func (g *Guest) linear(va uint64) (uint64, bool) {
	if va >= g.pageOffset && va-g.pageOffset < directMapSpan {
		return va - g.pageOffset, true
	}
	if va >= kernelsym.StartKernelMap && va-kernelsym.StartKernelMap < imageSpan {
		return va - kernelsym.StartKernelMap + g.physBase, true
	}
	return 0, false
}

// Read copies len(dst) bytes from kernel virtual address va. A read that
// crosses a page boundary outside the direct map is translated per page.
func (g *Guest) Read(va uint64, dst []byte) error {
	if pa, ok := g.linear(va); ok {
		return g.mem.Read(pa, dst)
	}
	return g.pt.Read(va, dst)
}

// U64 reads a uint64 at kernel virtual address va.
func (g *Guest) U64(va uint64) (uint64, error) {
	var b [8]byte
	if err := g.Read(va, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// PerCPUOffset returns __per_cpu_offset[cpu].
func (g *Guest) PerCPUOffset(cpu int) (uint64, error) {
	if cpu < 0 || cpu >= g.nrCPUs {
		return 0, fmt.Errorf("cpu %d out of range (nr_cpu_ids %d)", cpu, g.nrCPUs)
	}
	return g.mem.U64(g.ImagePA(g.k.Symbols["__per_cpu_offset"] + uint64(cpu)*8))
}
