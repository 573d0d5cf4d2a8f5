package vmm

import (
	"errors"
	"fmt"
	"io"
	"os"

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

// CheckKernelFits says whether k fits in size bytes of guest RAM.
func CheckKernelFits(k *Kernel, size uint64) error {
	kernEnd := uint64(kernelAddr) + max(uint64(len(k.Image)), uint64(k.InitSize))
	if kernEnd > lowRAM(size) {
		return fmt.Errorf("the kernel needs %d MiB of guest RAM below the MMIO hole and --memory gives %d MiB; give the guest more --memory", (kernEnd+1<<20-1)>>20, lowRAM(size)>>20)
	}
	return nil
}

// initrdPlace returns where an initramfs of n bytes goes for kernel k in
// guest RAM whose part below the MMIO hole ends at lowEnd.
func initrdPlace(k *Kernel, lowEnd, n uint64) (uint64, error) {
	kernEnd := uint64(kernelAddr) + max(uint64(len(k.Image)), uint64(k.InitSize))
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

// readExactly reads the n bytes a regular file had when it was opened.
func readExactly(f *os.File, n int64, flag string) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s %s shrank while being read", flag, f.Name())
		}
		return nil, fmt.Errorf("%s %s: %w", flag, f.Name(), err)
	}
	return b, nil
}

// ReadKernel reads and validates the bzImage at path for a guest with
// size bytes of RAM: a regular file no larger than the guest's RAM below
// the MMIO hole (so /dev/zero or a FIFO is refused before any read), a
// valid bzImage (ParseBzImage), and one that fits.
func ReadKernel(path string, size uint64) ([]byte, *Kernel, error) {
	f, n, err := openRegular(path, "--kernel")
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if uint64(n) > lowRAM(size) {
		return nil, nil, fmt.Errorf("--kernel %s is %d MiB, more than the guest's %d MiB of RAM below the MMIO hole", path, n>>20, lowRAM(size)>>20)
	}
	b, err := readExactly(f, n, "--kernel")
	if err != nil {
		return nil, nil, err
	}
	k, err := ParseBzImage(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--kernel %s: %w", path, err)
	}
	if err := CheckKernelFits(k, size); err != nil {
		return nil, nil, fmt.Errorf("--kernel %s: %w", path, err)
	}
	return b, k, nil
}

// ReadInitrds reads the --initramfs files, concatenated, for kernel k in
// a guest with size bytes of RAM. Every file must be regular, and their
// total size must fit next to the kernel, both checked before anything is
// read.
func ReadInitrds(paths []string, k *Kernel, size uint64) ([]byte, error) {
	files := make([]*os.File, 0, len(paths))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var sizes []int64
	var total uint64
	for _, p := range paths {
		f, n, err := openRegular(p, "--initramfs")
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		sizes = append(sizes, n)
		total += uint64(n)
	}
	if len(files) == 0 {
		return nil, nil
	}
	if _, err := initrdPlace(k, lowRAM(size), total); err != nil {
		return nil, fmt.Errorf("--initramfs: %w", err)
	}
	out := make([]byte, 0, total)
	for i, f := range files {
		b, err := readExactly(f, sizes[i], "--initramfs")
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}
