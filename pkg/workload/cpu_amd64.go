package workload

func rdtscpAux() uint32
func cpuid(leaf uint32) (eax, ebx, ecx, edx uint32)

// hasRDTSCP reports whether the CPU has RDTSCP (CPUID 0x80000001 EDX bit 27).
func hasRDTSCP() bool {
	if max, _, _, _ := cpuid(0x80000000); max < 0x80000001 {
		return false
	}
	_, _, _, edx := cpuid(0x80000001)
	return edx&(1<<27) != 0
}

// fastCPU reads the current CPU from TSC_AUX, which Linux sets to
// node<<12 | cpu on every CPU (what the vDSO's getcpu reads): no system
// call.
func fastCPU() int { return int(rdtscpAux() & 0xfff) }
