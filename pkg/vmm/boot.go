package vmm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

// BootConfig is what LoadBoot puts in guest RAM.
type BootConfig struct {
	Kernel *Kernel
	// Initramfs, if not nil, is read straight into guest RAM; else
	// Initrd's bytes are copied there.
	Initramfs *Initramfs
	Initrd    []byte
	Cmdline   string
	// Topology is the guest's shape: its vCPUs' APIC IDs go into the MP
	// table.
	Topology *topology.Topology
}

// BootInfo says where things went.
type BootInfo struct {
	Entry      uint64 // 64-bit entry point (startup_64)
	InitrdAddr uint64
	E820       []E820Entry
}

// LoadBoot writes the kernel, initramfs, command line, zero page, page
// tables, GDT, MP table and ACPI tables into guest RAM.
func LoadBoot(m *guestmem.Memory, c BootConfig) (BootInfo, error) {
	return loadBoot(m, c, nil)
}

// loadBoot is LoadBoot, marking load_kernel and boot_tables on clock (nil:
// none) and adding load_initramfs, which runs on its own goroutine beside
// the other two: two copies at once where the host has the CPUs for them.
func loadBoot(m *guestmem.Memory, c BootConfig, clock *SetupClock) (BootInfo, error) {
	k := c.Kernel
	var info BootInfo
	lowEnd := m.Regions()[0].Size
	kernEnd := k.end()
	if kernEnd > lowEnd {
		return info, fmt.Errorf("kernel needs %d MiB below the MMIO hole; give the guest more --memory", kernEnd>>20)
	}
	if uint64(len(c.Cmdline)) > uint64(k.CmdlineSize) {
		return info, fmt.Errorf("kernel command line is %d bytes; this kernel accepts at most %d", len(c.Cmdline), k.CmdlineSize)
	}
	if c.Topology == nil || len(c.Topology.CPUs) == 0 {
		return info, fmt.Errorf("no vCPUs: want at least 1")
	}
	ir := c.Initramfs
	if ir == nil && len(c.Initrd) > 0 {
		ir = initramfsOf(c.Initrd)
	}
	irSize := ir.Size()
	if irSize > 0 {
		addr, err := initrdPlace(k, lowEnd, irSize)
		if err != nil {
			return info, err
		}
		info.InitrdAddr = addr
	}

	// The initramfs goes in on its own goroutine; loadBoot never returns
	// before it is done (guest RAM must outlive the copy).
	irDone := make(chan struct{})
	var irErr error
	var irTime time.Duration
	if irSize > 0 {
		go func() {
			defer close(irDone)
			t := time.Now()
			irErr = ir.load(m, info.InitrdAddr)
			irTime = time.Since(t)
		}()
	} else {
		close(irDone)
	}
	err := loadKernelAndTables(m, c, &info, irSize, clock)
	<-irDone
	if err != nil {
		return info, err
	}
	if irErr != nil {
		return info, fmt.Errorf("load initramfs: %w", irErr)
	}
	if irSize > 0 {
		clock.Add(PhaseLoadInitramfs, irTime)
	}
	return info, nil
}

// loadKernelAndTables is loadBoot's part beside the initramfs copy: the
// kernel image, then the command line, zero page (which points at the
// initramfs, placed at info.InitrdAddr, irSize bytes), page tables, GDT,
// MP and ACPI tables.
func loadKernelAndTables(m *guestmem.Memory, c BootConfig, info *BootInfo, irSize uint64, clock *SetupClock) error {
	k := c.Kernel
	if err := k.loadImage(m); err != nil {
		return fmt.Errorf("load kernel: %w", err)
	}
	info.Entry = kernelAddr + entry64Offset
	clock.Mark(PhaseLoadKernel)

	cl := append([]byte(c.Cmdline), 0)
	if err := m.Write(cmdlineAddr, cl); err != nil {
		return fmt.Errorf("write command line: %w", err)
	}
	zp := make([]byte, zeroPageSize)
	copy(zp[hdrSetupSects:], k.Header)
	zp[hdrTypeOfLoader] = 0xFF
	zp[hdrLoadFlags] |= canUseHeap
	binary.LittleEndian.PutUint16(zp[hdrHeapEndPtr:], 0xFE00)
	binary.LittleEndian.PutUint32(zp[hdrCmdLinePtr:], cmdlineAddr)
	binary.LittleEndian.PutUint32(zp[bpExtCmdLinePtr:], 0)
	if irSize > 0 {
		addr := info.InitrdAddr
		binary.LittleEndian.PutUint32(zp[hdrRamdiskImage:], uint32(addr))
		binary.LittleEndian.PutUint32(zp[hdrRamdiskSize:], uint32(irSize))
		binary.LittleEndian.PutUint32(zp[bpExtRamdiskImage:], uint32(addr>>32))
		binary.LittleEndian.PutUint32(zp[bpExtRamdiskSize:], uint32(irSize>>32))
	}
	info.E820 = e820Map(m.Regions())
	if len(info.E820) > bpE820Max {
		return fmt.Errorf("%d e820 entries, the zero page holds %d", len(info.E820), bpE820Max)
	}
	zp[bpE820Entries] = byte(len(info.E820))
	for i, e := range info.E820 {
		o := bpE820Table + 20*i
		binary.LittleEndian.PutUint64(zp[o:], e.Addr)
		binary.LittleEndian.PutUint64(zp[o+8:], e.Size)
		binary.LittleEndian.PutUint32(zp[o+16:], e.Type)
	}
	if err := m.Write(zeroPageAddr, zp); err != nil {
		return fmt.Errorf("write zero page: %w", err)
	}
	if err := writePageTables(m); err != nil {
		return err
	}
	if err := writeGDT(m); err != nil {
		return err
	}
	ids := make([]uint32, len(c.Topology.CPUs))
	for i, cpu := range c.Topology.CPUs {
		ids[i] = cpu.APICID
	}
	if err := writeMPTable(m, ids); err != nil {
		return err
	}
	if err := installACPI(m, c.Topology, info.E820); err != nil {
		return err
	}
	clock.Mark(PhaseBootTables)
	return nil
}

// writePageTables identity-maps the first 4 GiB with 2 MiB pages:
// PML4[0] -> PDPT, PDPT[0..3] -> four page directories.
func writePageTables(m *guestmem.Memory) error {
	const present, rw, ps = 1, 2, 0x80
	b := make([]byte, 0x1000)
	binary.LittleEndian.PutUint64(b, pdptAddr|present|rw)
	if err := m.Write(pml4Addr, b); err != nil {
		return fmt.Errorf("write PML4: %w", err)
	}
	b = make([]byte, 0x1000)
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(pdAddr+i*0x1000)|present|rw)
	}
	if err := m.Write(pdptAddr, b); err != nil {
		return fmt.Errorf("write PDPT: %w", err)
	}
	b = make([]byte, 4*0x1000)
	for i := 0; i < 4*512; i++ {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(i)<<21|present|rw|ps)
	}
	if err := m.Write(pdAddr, b); err != nil {
		return fmt.Errorf("write page directories: %w", err)
	}
	return nil
}

// GDT selectors the 64-bit boot protocol requires: __BOOT_CS 0x10 and
// __BOOT_DS 0x18, flat 4 GiB segments; 0x20 is a TSS for KVM's benefit.
const (
	selCode = 0x10
	selData = 0x18
	selTSS  = 0x20
)

func gdtEntry(flags uint16, base, limit uint32) uint64 {
	return uint64(base&0xFF000000)<<32 | uint64(flags&0xF0FF)<<40 | uint64(limit&0xF0000)<<32 |
		uint64(base&0xFFFFFF)<<16 | uint64(limit&0xFFFF)
}

var gdtTable = [5]uint64{
	0, 0,
	gdtEntry(0xA09B, 0, 0xFFFFF), // code: present, DPL0, exec/read, L, G
	gdtEntry(0xC093, 0, 0xFFFFF), // data: present, read/write, D/B, G
	gdtEntry(0x808B, 0, 0xFFFFF), // busy 64-bit TSS
}

func writeGDT(m *guestmem.Memory) error {
	b := make([]byte, 8*len(gdtTable))
	for i, e := range gdtTable {
		binary.LittleEndian.PutUint64(b[8*i:], e)
	}
	if err := m.Write(gdtAddr, b); err != nil {
		return fmt.Errorf("write GDT: %w", err)
	}
	if err := m.Write(idtAddr, make([]byte, 8)); err != nil {
		return fmt.Errorf("write IDT: %w", err)
	}
	return nil
}
