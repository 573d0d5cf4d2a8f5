package vmm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/regfile"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

// Checks of what ktstr-boot is given (files, memory size, topology) that
// can be made before a VM exists, so that bad arguments fail at once with
// exit 2 instead of after reading without bound or at run time. They are
// the same limits the run enforces.

// MaxVCPUs is the most vCPUs a guest can have: the MP table and the
// in-kernel xAPIC irqchip take 8-bit APIC IDs (0xFF is the broadcast ID).
const MaxVCPUs = mpMaxVCPUs

// CheckMemory refuses a guest RAM size the VMM cannot boot.
func CheckMemory(size uint64) error {
	if size < MinMemory {
		return fmt.Errorf("%d bytes is below the %d MiB minimum", size, MinMemory>>20)
	}
	return nil
}

// CheckTopology refuses a topology the VMM cannot create whatever KVM
// allows: more than MaxVCPUs vCPUs or an APIC ID above
// topology.MaxXAPICID. (KVM's own limits are checked when the VM is made.)
func CheckTopology(t *topology.Topology) error {
	if n := len(t.CPUs); n > MaxVCPUs {
		return fmt.Errorf("topology %s has %d vCPUs; ktstr-boot supports at most %d (8-bit xAPIC IDs)", t.Shape, n, MaxVCPUs)
	}
	if t.NeedsX2APIC() {
		return fmt.Errorf("topology %s needs APIC ID %d; ktstr-boot supports APIC IDs up to %d (8-bit xAPIC): use fewer LLCs, cores per LLC or threads, or counts that are powers of two", t.Shape, t.MaxAPICID(), topology.MaxXAPICID)
	}
	return nil
}

// lowRAM is how much of size bytes of guest RAM lies below the MMIO hole,
// where the kernel and the initramfs go.
func lowRAM(size uint64) uint64 { return Layout(size)[0].Size }

// end is the guest-physical end of the kernel: its image or, if larger,
// the init_size it needs to decompress in place.
func (k *Kernel) end() uint64 {
	return uint64(kernelAddr) + max(k.ImageSize, uint64(k.InitSize))
}

// checkKernelFits says whether k fits in size bytes of guest RAM.
func checkKernelFits(k *Kernel, size uint64) error {
	kernEnd := k.end()
	if kernEnd > lowRAM(size) {
		return fmt.Errorf("the kernel needs %d MiB of guest RAM below the MMIO hole and --memory gives %d MiB; give the guest more --memory", (kernEnd+1<<20-1)>>20, lowRAM(size)>>20)
	}
	return nil
}

// initrdPlace returns where an initramfs of n bytes goes for kernel k in
// guest RAM whose part below the MMIO hole ends at lowEnd.
func initrdPlace(k *Kernel, lowEnd, n uint64) (uint64, error) {
	kernEnd := k.end()
	limit := min(lowEnd, uint64(k.InitrdAddrMax)+1)
	if n > limit || (limit-n)&^0xFFF < kernEnd {
		return 0, fmt.Errorf("initramfs of %d MiB does not fit below %d MiB next to the %d MiB kernel; give the guest more --memory", (n+1<<20-1)>>20, limit>>20, kernEnd>>20)
	}
	return (limit - n) &^ 0xFFF, nil
}

// openRegular opens path for reading without blocking (a FIFO must not
// hang the open) and checks that it is a regular file; it returns the file
// and its size.
func openRegular(path, flag string) (*os.File, int64, error) {
	f, st, err := regfile.Open(path, os.O_RDONLY)
	var nr *regfile.NotRegularError
	if errors.As(err, &nr) {
		return nil, 0, fmt.Errorf("%s %s is not a regular file but a %s; give a file", flag, path, nr.Kind)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return f, st.Size(), nil
}

// OpenKernel opens and validates the bzImage at path for a guest with
// size bytes of RAM: a regular file no larger than the guest's RAM below
// the MMIO hole (so /dev/zero or a FIFO is refused before any read), a
// valid bzImage (parseBzImageAt reads its setup header, nothing more),
// and one that fits. The protected-mode kernel is read straight into
// guest RAM when the guest is built; Close the Kernel after the run.
func OpenKernel(path string, size uint64) (*Kernel, error) {
	f, n, err := openRegular(path, "--kernel")
	if err != nil {
		return nil, err
	}
	if uint64(n) > lowRAM(size) {
		f.Close()
		return nil, fmt.Errorf("--kernel %s is %d MiB, more than the guest's %d MiB of RAM below the MMIO hole", path, n>>20, lowRAM(size)>>20)
	}
	k, err := parseBzImageAt(f, n)
	if err == nil {
		err = checkKernelFits(k, size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--kernel %s: %w", path, err)
	}
	k.closer = f
	return k, nil
}

// Close closes the file OpenKernel opened (nothing for a Kernel parsed
// from bytes).
func (k *Kernel) Close() error {
	if k.closer == nil {
		return nil
	}
	c := k.closer
	k.closer = nil
	return c.Close()
}

// Initramfs is the initramfs: one or more parts, concatenated in guest
// RAM, each read straight from its file (or bytes) into the guest when
// the guest is built.
type Initramfs struct {
	parts []initrdPart
	size  uint64
}

type initrdPart struct {
	src  io.ReaderAt
	n    int64
	name string
	file *os.File // nil for bytes
}

// initramfsOf is an Initramfs of b's bytes (tests, callers that built one
// in memory).
func initramfsOf(b []byte) *Initramfs {
	return &Initramfs{parts: []initrdPart{{src: bytes.NewReader(b), n: int64(len(b)), name: "initramfs"}}, size: uint64(len(b))}
}

// Size is the initramfs's total length.
func (ir *Initramfs) Size() uint64 {
	if ir == nil {
		return 0
	}
	return ir.size
}

// Close closes the files OpenInitramfs opened.
func (ir *Initramfs) Close() error {
	if ir == nil {
		return nil
	}
	var first error
	for i := range ir.parts {
		if f := ir.parts[i].file; f != nil {
			if err := f.Close(); err != nil && first == nil {
				first = err
			}
			ir.parts[i].file = nil
		}
	}
	return first
}

// load reads every part into guest RAM from gpa on, one after another.
func (ir *Initramfs) load(m *guestmem.Memory, gpa uint64) error {
	for _, p := range ir.parts {
		if err := m.LoadFrom(gpa, p.src, 0, uint64(p.n)); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s shrank after it was opened: %w", p.name, err)
			}
			return fmt.Errorf("%s: %w", p.name, err)
		}
		gpa += uint64(p.n)
	}
	return nil
}

// OpenInitramfs opens the --initramfs files, to be concatenated, for
// kernel k in a guest with size bytes of RAM. Every file must be regular,
// and their total size must fit next to the kernel, both checked before
// anything is read; the files are read straight into guest RAM when the
// guest is built. With no paths it returns nil. Close it after the run.
func OpenInitramfs(paths []string, k *Kernel, size uint64) (*Initramfs, error) {
	ir := &Initramfs{}
	for _, p := range paths {
		f, n, err := openRegular(p, "--initramfs")
		if err != nil {
			ir.Close()
			return nil, err
		}
		ir.parts = append(ir.parts, initrdPart{src: f, n: n, name: "--initramfs " + p, file: f})
		ir.size += uint64(n)
	}
	if len(ir.parts) == 0 {
		return nil, nil
	}
	if _, err := initrdPlace(k, lowRAM(size), ir.size); err != nil {
		ir.Close()
		return nil, fmt.Errorf("--initramfs: %w", err)
	}
	return ir, nil
}
