package kvmprobe

// hostLoop counts n (>= 1) down to zero with dec/jnz, the guest loop's two
// instructions (hostloop_amd64.s).
func hostLoop(n uint32)
