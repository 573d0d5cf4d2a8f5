package vmm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"

	"testing"

	"github.com/ktstr-go/ktstr/internal/testenv"
	"github.com/ktstr-go/ktstr/pkg/guestmem"
	"github.com/ktstr-go/ktstr/pkg/kvm"
	"github.com/ktstr-go/ktstr/pkg/topology"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		size uint64
		want []guestmem.Region
	}{
		{512 << 20, []guestmem.Region{{GPA: 0, Size: 512 << 20, Offset: 0}}},
		{3 << 30, []guestmem.Region{{GPA: 0, Size: 3 << 30, Offset: 0}}},
		{6 << 30, []guestmem.Region{{GPA: 0, Size: 3 << 30, Offset: 0}, {GPA: 4 << 30, Size: 3 << 30, Offset: 3 << 30}}},
		{(3 << 30) + 4096, []guestmem.Region{{GPA: 0, Size: 3 << 30, Offset: 0}, {GPA: 4 << 30, Size: 4096, Offset: 3 << 30}}},
	}
	for _, tc := range tests {
		got := Layout(tc.size)
		if len(got) != len(tc.want) {
			t.Fatalf("Layout(%d) = %+v, want %+v", tc.size, got, tc.want)
		}
		var total uint64
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Layout(%d)[%d] = %+v, want %+v", tc.size, i, got[i], tc.want[i])
			}
			if got[i].GPA < 1<<32 && got[i].GPA+got[i].Size > MMIOHoleStart {
				t.Errorf("Layout(%d): region %+v overlaps the MMIO hole", tc.size, got[i])
			}
			total += got[i].Size
		}
		if total != tc.size {
			t.Errorf("Layout(%d) covers %d bytes", tc.size, total)
		}
	}
}

func TestE820SixGiB(t *testing.T) {
	es := e820Map(Layout(6 << 30))
	want := []E820Entry{
		{0, mpConfigAddr, E820RAM},
		{mpConfigAddr, ebdaEnd - mpConfigAddr, E820Reserved},
		{kernelAddr, (3 << 30) - kernelAddr, E820RAM},
		{4 << 30, 3 << 30, E820RAM},
	}
	if len(es) != len(want) {
		t.Fatalf("e820 %+v, want %+v", es, want)
	}
	for i := range es {
		if es[i] != want[i] {
			t.Errorf("e820[%d] = %+v, want %+v", i, es[i], want[i])
		}
		for _, dev := range []uint64{VirtioMMIOBase, IOAPICAddr, LAPICAddr} {
			if es[i].Type == E820RAM && dev >= es[i].Addr && dev < es[i].Addr+es[i].Size {
				t.Errorf("e820 RAM %+v covers device at %#x", es[i], dev)
			}
		}
	}
}

func TestMemorySixGiB(t *testing.T) {
	m, err := newMemory(6 << 30)
	if err != nil {
		t.Fatalf("newMemory(6G): %v", err)
	}
	defer m.Close()
	if err := m.Write(5<<30, []byte("high")); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Slice(5<<30, 4); string(s) != "high" {
		t.Fatal("high memory did not hold its bytes")
	}
	for _, gpa := range []uint64{MMIOHoleStart, VirtioMMIOBase, (4 << 30) - 1, 7 << 30, ^uint64(0)} {
		if _, err := m.Slice(gpa, 1); !errors.Is(err, guestmem.ErrUnmapped) {
			t.Errorf("Slice(%#x) = %v, want out of range", gpa, err)
		}
	}
	if _, err := m.Slice((3<<30)-2, 4); err == nil {
		t.Error("a range across the hole was accepted")
	}
	if _, err := m.Slice(0, ^uint64(0)); err == nil {
		t.Error("an overflowing length was accepted")
	}
}

// fakeBzImage builds the smallest file parseBzImage accepts.
func fakeBzImage(version uint16, xlf uint16) []byte {
	b := make([]byte, 8192)
	b[hdrSetupSects] = 4
	binary.LittleEndian.PutUint16(b[hdrBootFlag:], 0xAA55)
	b[hdrJump] = 0xEB
	b[hdrJump+1] = 0x6A // header ends at 0x26C
	copy(b[hdrMagic:], "HdrS")
	binary.LittleEndian.PutUint16(b[hdrVersion:], version)
	b[hdrLoadFlags] = loadedHigh
	binary.LittleEndian.PutUint16(b[hdrXLoadFlags:], xlf)
	binary.LittleEndian.PutUint32(b[hdrInitrdAddrMax:], 0x7FFFFFFF)
	binary.LittleEndian.PutUint32(b[hdrCmdlineSize:], 2047)
	binary.LittleEndian.PutUint32(b[hdrInitSize:], 0x10000)
	binary.LittleEndian.PutUint32(b[hdrSysSize:], (8192-5*512)/16)
	binary.LittleEndian.PutUint32(b[hdrPayloadOffset:], 0x100)
	binary.LittleEndian.PutUint32(b[hdrPayloadLength:], 0x1000)
	return b
}

// withU32 returns a copy of a fake image with the 32-bit field at off set.
func withU32(off int, v uint32) []byte {
	b := fakeBzImage(0x020F, xlfKernel64)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func TestParseBzImage(t *testing.T) {
	good := fakeBzImage(0x020F, xlfKernel64)
	k, err := parseBzImage(good)
	if err != nil {
		t.Fatalf("good image: %v", err)
	}
	if k.ImageSize != 8192-5*512 || k.CmdlineSize != 2047 {
		t.Fatalf("kernel %+v", k)
	}
	bad := map[string][]byte{
		"empty":         nil,
		"text":          []byte("#!/bin/sh\necho not a kernel\n"),
		"elf":           append([]byte("\x7fELF"), make([]byte, 9000)...),
		"old protocol":  fakeBzImage(0x020B, xlfKernel64),
		"no 64-bit":     fakeBzImage(0x020F, 0),
		"no HdrS":       func() []byte { b := fakeBzImage(0x020F, 1); b[hdrMagic] = 'X'; return b }(),
		"zImage":        func() []byte { b := fakeBzImage(0x020F, 1); b[hdrLoadFlags] = 0; return b }(),
		"setup too big": func() []byte { b := fakeBzImage(0x020F, 1); b[hdrSetupSects] = 200; return b }(),
		"truncated":     fakeBzImage(0x020F, 1)[:0x250],
		// Sizes the header gives that the file does not back.
		"cut after setup":        fakeBzImage(0x020F, 1)[:8192-100],
		"syssize past the end":   withU32(hdrSysSize, (8192-5*512)/16+1),
		"syssize 0":              withU32(hdrSysSize, 0),
		"huge syssize":           withU32(hdrSysSize, 0xFFFFFFFF),
		"payload past syssize":   withU32(hdrPayloadLength, 8192),
		"payload offset huge":    withU32(hdrPayloadOffset, 0xFFFFFFF0),
		"no payload":             withU32(hdrPayloadLength, 0),
		"init_size below kernel": withU32(hdrInitSize, 0x100),
		"init_size 4 GiB":        withU32(hdrInitSize, 0xFFFFFFFF),
		"init_size 0":            withU32(hdrInitSize, 0),
	}
	for name, b := range bad {
		var nb *NotBzImageError
		if _, err := parseBzImage(b); !errors.As(err, &nb) {
			t.Errorf("%s: err = %v, want NotBzImageError", name, err)
		}
	}
}

func TestParseFixtureKernel(t *testing.T) {
	p := testenv.Need(t, testenv.KernelVar, "the fixture bzImage is not checked")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseBzImage(b)
	if err != nil {
		t.Fatal(err)
	}
	if k.Protocol < minProtocol || k.InitSize == 0 || k.CmdlineSize < 255 {
		t.Fatalf("fixture kernel: %+v", k)
	}
}

func FuzzParseBzImage(f *testing.F) {
	f.Add(fakeBzImage(0x020F, 1))
	f.Add([]byte("garbage"))
	f.Add(fakeBzImage(0x020F, 1)[:8000])
	f.Add(withU32(hdrSysSize, 0xFFFFFFFF))
	f.Add(withU32(hdrPayloadOffset, 0xFFFFFFF0))
	f.Add(withU32(hdrInitSize, 0xFFFFFFFF))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseBzImage(b)
		if err != nil {
			return
		}
		if k.ImageSize == 0 || len(k.Header) == 0 {
			t.Fatal("accepted image without kernel or header")
		}
		// Whatever is accepted is backed by the file and loadable in
		// principle: the protected-mode kernel is in the file and
		// init_size covers it and fits below the hole.
		if k.SysSize == 0 || k.SysSize > k.ImageSize || uint64(k.InitSize) < k.SysSize || uint64(k.InitSize) > MMIOHoleStart-kernelAddr {
			t.Fatalf("accepted inconsistent sizes: syssize %d, image %d, init_size %d", k.SysSize, k.ImageSize, k.InitSize)
		}
	})
}

func TestLoadBoot(t *testing.T) {
	m := newMemoryFromBytes(make([]byte, 64<<20))
	k, err := parseBzImage(fakeBzImage(0x020F, xlfKernel64))
	if err != nil {
		t.Fatal(err)
	}
	initrd := bytes.Repeat([]byte("initrd"), 1000)
	info, err := LoadBoot(m, BootConfig{Kernel: k, Initrd: initrd, Cmdline: "console=ttyS0 foo", Topology: flat(t, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if info.Entry != kernelAddr+0x200 {
		t.Errorf("entry %#x", info.Entry)
	}
	zp, _ := m.Slice(zeroPageAddr, zeroPageSize)
	u32 := func(o int) uint32 { return binary.LittleEndian.Uint32(zp[o:]) }
	if string(zp[hdrMagic:hdrMagic+4]) != "HdrS" || zp[hdrTypeOfLoader] != 0xFF {
		t.Error("setup header not copied or loader type unset")
	}
	if u32(hdrCmdLinePtr) != cmdlineAddr {
		t.Errorf("cmd_line_ptr %#x", u32(hdrCmdLinePtr))
	}
	cl, _ := m.Slice(cmdlineAddr, 18)
	if string(cl) != "console=ttyS0 foo\x00" {
		t.Errorf("command line %q", cl)
	}
	ra, rs := u32(hdrRamdiskImage), u32(hdrRamdiskSize)
	if rs != uint32(len(initrd)) || ra%4096 != 0 || uint64(ra)+uint64(rs) > 64<<20 {
		t.Errorf("initrd at %#x size %d", ra, rs)
	}
	if got, _ := m.Slice(uint64(ra), uint64(rs)); !bytes.Equal(got, initrd) {
		t.Error("initrd bytes differ")
	}
	if n := int(zp[bpE820Entries]); n != 3 {
		t.Errorf("%d e820 entries", n)
	}
	// page tables: 0xd0000000 identity-mapped by a 2 MiB page
	pd, _ := m.U64(pdAddr + 8*(0xD0000000>>21))
	if pd&^0xFFF != 0xD0000000 || pd&0x81 != 0x81 {
		t.Errorf("PD entry for 0xd0000000 = %#x", pd)
	}
	// MP table: floating pointer and config table checksums
	fp, _ := m.Slice(mptableAddr, 16)
	if string(fp[:4]) != "_MP_" || checksum(fp) != 0 {
		t.Error("MP floating pointer bad")
	}
	hl, _ := m.U16(mpConfigAddr + 4)
	ct, _ := m.Slice(mpConfigAddr, uint64(hl))
	if string(ct[:4]) != "PCMP" || checksum(ct) != 0 {
		t.Error("MP config table bad")
	}
	if ct[44] != 0 || ct[44+3] != 3 || ct[64] != 0 || ct[64+1] != 1 || ct[64+3] != 1 {
		t.Errorf("processor entries wrong: % x", ct[44:84])
	}
}

// TestMPTableLarge: 254 processors with sparse APIC IDs (as a topology
// lays them out) fit, each entry carries its vCPU's APIC ID, and the I/O
// APIC's ID follows the largest; IDs past 254 are refused.
func TestMPTableLarge(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []uint32
	}{
		{"64 dense", seqIDs(64, 1)},
		{"64 sparse", seqIDs(64, 2)[:64]},
		{"254", seqIDs(254, 1)},
	} {
		m := newMemoryFromBytes(make([]byte, 2<<20))
		if err := writeMPTable(m, tc.ids); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		fp, _ := m.Slice(mptableAddr, 16)
		if string(fp[:4]) != "_MP_" || checksum(fp) != 0 || binary.LittleEndian.Uint32(fp[4:]) != mpConfigAddr {
			t.Fatalf("%s: floating pointer % x", tc.name, fp)
		}
		hl, _ := m.U16(mpConfigAddr + 4)
		ct, _ := m.Slice(mpConfigAddr, uint64(hl))
		if string(ct[:4]) != "PCMP" || checksum(ct) != 0 || mpConfigAddr+uint64(hl) > mptableAddr {
			t.Fatalf("%s: config table of %d bytes bad or overlapping the pointer", tc.name, hl)
		}
		for i, id := range tc.ids {
			e := ct[44+20*i:]
			if e[0] != 0 || uint32(e[1]) != id || (i == 0) != (e[3]&2 != 0) {
				t.Fatalf("%s: processor %d entry % x, want APIC ID %d", tc.name, i, e[:4], id)
			}
		}
		io := ct[44+20*len(tc.ids)+8:]
		if want := min(tc.ids[len(tc.ids)-1]+1, 254); io[0] != 2 || uint32(io[1]) != want {
			t.Errorf("%s: I/O APIC entry % x, want ID %d", tc.name, io[:8], want)
		}
	}
	m := newMemoryFromBytes(make([]byte, 2<<20))
	if err := writeMPTable(m, []uint32{0, 255}); err == nil {
		t.Error("APIC ID 255 accepted")
	}
	if err := writeMPTable(m, seqIDs(255, 1)); err == nil {
		t.Error("255 processors accepted")
	}
}

func seqIDs(n int, step uint32) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i) * step
	}
	return ids
}

func TestLoadBootLimits(t *testing.T) {
	m := newMemoryFromBytes(make([]byte, 64<<20))
	k, _ := parseBzImage(fakeBzImage(0x020F, xlfKernel64))
	if _, err := LoadBoot(m, BootConfig{Kernel: k, Cmdline: string(bytes.Repeat([]byte("x"), 3000)), Topology: flat(t, 1)}); err == nil {
		t.Error("over-long command line accepted")
	}
	if _, err := LoadBoot(m, BootConfig{Kernel: k, Initrd: make([]byte, 70<<20), Topology: flat(t, 1)}); err == nil {
		t.Error("initrd larger than RAM accepted")
	}
	if _, err := LoadBoot(m, BootConfig{Kernel: k}); err == nil {
		t.Error("0 vCPUs accepted")
	}
}

func TestParseSize(t *testing.T) {
	ok := map[string]uint64{"1G": 1 << 30, "512M": 512 << 20, "6g": 6 << 30, "2GiB": 2 << 30, "4096": 4096, "64K": 64 << 10}
	for s, want := range ok {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1G", "G", "1X", "99999999T"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}

// TestGuestFeatures: the feature bits, and only those, are set once on
// KVM's supported CPUID; the input is left alone.
func TestGuestFeatures(t *testing.T) {
	sup := []kvm.CPUIDEntry{
		{Function: 1, EBX: 0x00000800, ECX: 1<<5 | 1<<0},
		{Function: 0xB, Index: 0, EDX: 7},
		{Function: 0x40000001, EAX: 0x1234},
		{Function: 0x80000001, ECX: 1<<2 | 1<<0},
	}
	for _, realtime := range []bool{false, true} {
		got := guestFeatures(sup, realtime)
		if got[0].ECX&featVMX != 0 || got[0].ECX&featHypervisor == 0 || got[0].ECX&1 == 0 {
			t.Errorf("leaf 1 ECX %#x: want hypervisor, no VMX, the rest kept", got[0].ECX)
		}
		if got[0].EBX != 0x800 || got[1].EDX != 7 {
			t.Errorf("topology fields changed: leaf 1 EBX %#x, 0xB EDX %d (pkg/topology owns them)", got[0].EBX, got[1].EDX)
		}
		if (got[2].EDX&kvmHintsRealtime != 0) != realtime || got[2].EAX != 0x1234 {
			t.Errorf("realtime %v: leaf 0x40000001 %+v", realtime, got[2])
		}
		if got[3].ECX != 1 {
			t.Errorf("leaf 0x80000001 ECX %#x: SVM not hidden", got[3].ECX)
		}
	}
	if sup[0].ECX != 1<<5|1 || sup[2].EDX != 0 {
		t.Error("guestFeatures modified its input")
	}
}

// flat is n cores in one LLC of one node.
func flat(t *testing.T, n int) *topology.Topology {
	t.Helper()
	s, err := topology.FromCPUs(n)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}
