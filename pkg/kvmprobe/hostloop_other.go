//go:build !amd64

package kvmprobe

var sink uint32

// hostLoop is a portable stand-in: KVM guests here are x86 only, so on
// other architectures the probe reports "none" before it runs.
func hostLoop(n uint32) {
	for ; n > 0; n-- {
		sink += n
	}
}
