//go:build !amd64

package workload

func hasRDTSCP() bool { return false }
func fastCPU() int    { return -1 }
