package kvm

// Regs is struct kvm_regs.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

// Segment is struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable (GDT/IDT register).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs is struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64
}

// FPU is struct kvm_fpu.
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// LAPICState is struct kvm_lapic_state: the 1 KiB APIC register page.
type LAPICState struct {
	Regs [1024]byte
}

// MSREntry is struct kvm_msr_entry.
type MSREntry struct {
	Index    uint32
	Reserved uint32
	Data     uint64
}

// msrsHeader is the fixed head of struct kvm_msrs.
type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

// CPUIDEntry is struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUID entry flags.
const (
	CPUIDFlagSignificantIndex = 1 << 0
)

// cpuid2Header is the fixed head of struct kvm_cpuid2.
type cpuid2Header struct {
	NEnt uint32
	_    uint32
}

// UserspaceMemoryRegion is struct kvm_userspace_memory_region.
type UserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

type irqLevel struct {
	IRQ   uint32
	Level uint32
}

type irqfd struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

// ioeventfd flags.
const (
	ioeventfdFlagDatamatch = 1 << 0
	ioeventfdFlagPIO       = 1 << 1
	ioeventfdFlagDeassign  = 1 << 2
)

type pitConfig struct {
	Flags uint32
	_     [15]uint32
}

// Exit reasons (kvm_run.exit_reason).
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitIRQWindowOpen = 7
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
	ExitSystemEvent   = 24
)

// System event types (kvm_run.system_event.type).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// I/O directions (kvm_run.io.direction).
const (
	IOIn  = 0
	IOOut = 1
)

// MP states.
const (
	MPStateRunnable      = 0
	MPStateUninitialized = 1
)

// Offsets into struct kvm_run (include/uapi/linux/kvm.h). The exit union
// starts at byte 32.
const (
	runImmediateExit = 1
	runExitReason    = 8
	runUnion         = 32
	// io: direction u8, size u8, port u16, count u32, data_offset u64
	runIODirection  = runUnion + 0
	runIOSize       = runUnion + 1
	runIOPort       = runUnion + 2
	runIOCount      = runUnion + 4
	runIODataOffset = runUnion + 8
	// mmio: phys_addr u64, data [8]u8, len u32, is_write u8
	runMMIOPhys    = runUnion + 0
	runMMIOData    = runUnion + 8
	runMMIOLen     = runUnion + 16
	runMMIOIsWrite = runUnion + 20
	// system_event: type u32, ndata u32, data [16]u64
	runSysEventType = runUnion + 0
	// fail_entry: hardware_entry_failure_reason u64, cpu u32
	runFailReason = runUnion + 0
	// internal: suberror u32, ndata u32, data [16]u64
	runInternalSuberror = runUnion + 0
	runInternalNData    = runUnion + 4
	runInternalData     = runUnion + 8
	// the union is 256 bytes; the minimum mmap size KVM reports is a page.
	runMinSize = runUnion + 256
)
