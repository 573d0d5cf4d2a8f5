package kvm

import "unsafe"

// ioctl number encoding from <asm-generic/ioctl.h>.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
	kvmio    = 0xAE
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | kvmio<<8 | nr
}
func ionr(nr uintptr) uintptr       { return ioc(iocNone, nr, 0) }
func iow(nr, size uintptr) uintptr  { return ioc(iocWrite, nr, size) }
func ior(nr, size uintptr) uintptr  { return ioc(iocRead, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, nr, size) }
func sizeOf[T any]() uintptr        { var v T; return unsafe.Sizeof(v) }

// ioctl request numbers used by this package.
var (
	kvmGetAPIVersion       = ionr(0x00)
	kvmCreateVM            = ionr(0x01)
	kvmCheckExtension      = ionr(0x03)
	kvmGetVCPUMmapSize     = ionr(0x04)
	kvmGetSupportedCPUID   = iowr(0x05, sizeOf[cpuid2Header]())
	kvmCreateVCPU          = ionr(0x41)
	kvmSetUserMemoryRegion = iow(0x46, sizeOf[UserspaceMemoryRegion]())
	kvmSetTSSAddr          = ionr(0x47)
	kvmSetIdentityMapAddr  = iow(0x48, 8)
	kvmCreateIRQChip       = ionr(0x60)
	kvmIRQLine             = iow(0x61, sizeOf[irqLevel]())
	kvmIRQFD               = iow(0x76, sizeOf[irqfd]())
	kvmCreatePIT2          = iow(0x77, sizeOf[pitConfig]())
	kvmIOEventFD           = iow(0x79, sizeOf[ioeventfd]())
	kvmRun                 = ionr(0x80)
	kvmGetRegs             = ior(0x81, sizeOf[Regs]())
	kvmSetRegs             = iow(0x82, sizeOf[Regs]())
	kvmGetSregs            = ior(0x83, sizeOf[Sregs]())
	kvmSetSregs            = iow(0x84, sizeOf[Sregs]())
	kvmGetMSRs             = iowr(0x88, sizeOf[msrsHeader]())
	kvmSetMSRs             = iow(0x89, sizeOf[msrsHeader]())
	kvmGetFPU              = ior(0x8c, sizeOf[FPU]())
	kvmSetFPU              = iow(0x8d, sizeOf[FPU]())
	kvmGetLAPIC            = ior(0x8e, sizeOf[LAPICState]())
	kvmSetLAPIC            = iow(0x8f, sizeOf[LAPICState]())
	kvmSetCPUID2           = iow(0x90, sizeOf[cpuid2Header]())
	kvmGetMPState          = ior(0x98, 4)
	kvmSetMPState          = iow(0x99, 4)
	kvmGetStatsFD          = ionr(0xce)
)

// Capabilities (KVM_CAP_*) this project checks.
const (
	CapIRQChip          = 0
	CapHLT              = 1
	CapUserMemory       = 3
	CapSetTSSAddr       = 4
	CapExtCPUID         = 7
	CapPIT2             = 33
	CapIRQFD            = 32
	CapIOEventFD        = 36
	CapSetIdentityMap   = 37
	CapTSCDeadlineTimer = 72
	CapImmediateExit    = 136
	CapBinaryStatsFD    = 203
)
