//go:build !amd64

package lab

func rdtsc() uint64 { return 0 }
