package vmm

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/ktstr-go/ktstr/pkg/kvm"
)

// ProbeResult is what Probe measured about /dev/kvm.
type ProbeResult struct {
	CreateVM   []time.Duration // KVM_CREATE_VM, each try
	Iterations int
	TinyGuest  time.Duration // whole run of a loop guest, VM set-up included
	Reason     string
}

// Probe times KVM_CREATE_VM alone (it can take 20-100+ ms on some hosts,
// which is not the VMM's own cost) and a tiny guest that counts down
// iterations and resets: a few milliseconds on hardware KVM, about a
// second per million iterations on an emulated /dev/kvm.
func Probe(tries, iterations int) (ProbeResult, error) {
	var r ProbeResult
	sys, err := kvm.Open()
	if err != nil {
		return r, err
	}
	for i := 0; i < tries; i++ {
		t0 := time.Now()
		vm, err := sys.CreateVM()
		if err != nil {
			sys.Close()
			return r, err
		}
		r.CreateVM = append(r.CreateVM, time.Since(t0))
		vm.Close()
	}
	sys.Close()
	code := []byte{0xB9, 0, 0, 0, 0, 0xFF, 0xC9, 0x75, 0xFC} // mov ecx, n; dec ecx; jnz
	binary.LittleEndian.PutUint32(code[1:], uint32(iterations))
	code = append(code, 0xB0, i8042Reset, 0xE6, i8042Command, 0xF4) // mov al, 0xfe; out 0x64, al; hlt
	r.Iterations = iterations
	t0 := time.Now()
	res, err := Run(Config{GuestCode: code, VCPUs: 1, Memory: MinMemory, Timeout: 5 * time.Minute, Stream: io.Discard, Console: io.Discard})
	r.TinyGuest = time.Since(t0)
	r.Reason = res.Reason
	if err != nil {
		return r, err
	}
	if res.Reason != ReasonReboot {
		return r, fmt.Errorf("probe guest ended with %s: %s", res.Reason, res.Detail)
	}
	return r, nil
}
